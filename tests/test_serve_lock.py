"""The model server's HTTP library (waitress) in the image's lock: resolved with everything else, the
user's own waitress line winning, a pin the server cannot run on reported as a conflict (exit 8).

Locks are real (uv against the frozen index in tests/index)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES
from smenv.env.lock import LockError, lock
from smenv.env.requirements import parse_requirements
from smenv.env.resolve import SERVER_REQUIREMENT, ResolveOptions, resolve
from smenv.model.inspect import inspect_model

MODEL = FIXTURES / "models" / "tf215-savedmodel"


def plan_with(tmp_path: Path, requirements: str | None):
    reqs = None
    if requirements is not None:
        path = tmp_path / "requirements.txt"
        path.write_text(requirements)
        reqs = parse_requirements(path)
    return resolve(inspect_model(MODEL), reqs, ResolveOptions())


def test_waitress_is_added_exempt_from_the_cutoff_with_its_reason(tmp_path):
    plan = plan_with(tmp_path, None)
    ours = [p for p in plan.packages if p.requirement == SERVER_REQUIREMENT]
    assert len(ours) == 1 and ours[0].origin == "smenv"
    assert "waitress" in plan.cutoff_exempt
    decision = next(d for d in plan.decisions if d.topic == "server")
    assert "security" in decision.reason and "as-of" in decision.reason


def test_the_lock_takes_waitress_newer_than_the_cutoff(tmp_path, monkeypatch):
    monkeypatch.setenv("SMENV_NO_LOCK_CACHE", "1")
    plan = plan_with(tmp_path, None)
    the_lock, _ = lock(plan, cache=tmp_path / "locks")
    # TF 2.15.1's cut-off is 2024-03-08; waitress 3.0.0 (2024-02-04) is the newest by then, and
    # 3.0.1 (2024-10-29, the CVE fixes) or later is what the exemption is for.
    assert tuple(int(x) for x in the_lock.packages["waitress"].split(".")) >= (3, 0, 1)


def test_the_users_waitress_pin_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("SMENV_NO_LOCK_CACHE", "1")
    plan = plan_with(tmp_path, "waitress==3.0.0\n")
    assert "waitress==3.0.0" in [p.requirement for p in plan.packages]
    assert SERVER_REQUIREMENT not in [p.requirement for p in plan.packages] and SERVER_REQUIREMENT in plan.constraints
    assert "requirements.txt:1 asks for waitress==3.0.0" in next(d for d in plan.decisions if d.topic == "server").reason
    the_lock, _ = lock(plan, cache=tmp_path / "locks")
    assert the_lock.packages["waitress"] == "3.0.0"


def test_a_waitress_pin_older_than_the_server_supports_is_a_conflict(tmp_path, monkeypatch):
    monkeypatch.setenv("SMENV_NO_LOCK_CACHE", "1")
    plan = plan_with(tmp_path, "waitress==1.2.1\n")
    with pytest.raises(LockError) as caught:
        lock(plan, cache=tmp_path / "locks")
    assert caught.value.exit_code == 8 and "waitress" in caught.value.message
