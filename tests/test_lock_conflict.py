"""A lock that cannot be found is said in a sentence naming the packages and the requirements lines that
brought them in; uv's whole explanation goes to --json (error.details) and a log file, not the error line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CORPUS, FIXTURES
from smenv.env.bases import BaseAvailability
from smenv.env.lock import lock
from smenv.env.requirements import parse_requirements
from smenv.env.resolve import ResolveOptions, resolve
from smenv.errors import LockError
from smenv.model.inspect import inspect_model

MODEL = FIXTURES / "models" / "tf215-savedmodel"


def test_a_conflict_names_both_sides_and_the_requirements_line(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("pandas\nnumpy>=2\n")
    plan = resolve(inspect_model(MODEL), parse_requirements(reqs), ResolveOptions(python="3.11"))
    with pytest.raises(LockError) as info:
        lock(plan, cache=tmp_path / "locks")
    message = info.value.message
    assert message.startswith(
        f"no environment for Python 3.11: tensorflow-cpu==2.15.1 (the model's TensorFlow) and numpy>=2 (requirements.txt:2) "
        "cannot be installed together (tensorflow==2.15.1 needs numpy>=1.23.5,<2.0.0)"
    ), message
    assert "Because" not in message  # uv's derivation chain is not the message
    log = Path(info.value.log_path)
    assert message.endswith(f"uv's full explanation: {log}")
    assert "depends on numpy" in log.read_text() and "depends on numpy" in info.value.details
    assert info.value.to_json()["details"] == info.value.details


def test_every_python_that_failed_is_said_and_its_reason_kept(tmp_path, monkeypatch):
    """Was: "(older Pythons failed too: see --json notes)", with no notes in the JSON."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("numpy>=2\n")
    # A base registry makes every Python's base obtainable, so all three are candidates (without one, 3.10 is not).
    plan = resolve(inspect_model(MODEL), parse_requirements(reqs),
                   ResolveOptions(bases=BaseAvailability(registry="registry.example")))
    assert plan.python_candidates == ("3.11", "3.10", "3.9")
    with pytest.raises(LockError) as info:
        lock(plan, cache=tmp_path / "locks")
    assert "; Python 3.10, 3.9 did not resolve either" in info.value.message
    notes = info.value.to_json()["notes"]
    assert [n.split(":")[0] for n in notes] == ["Python 3.11 did not resolve", "Python 3.10 did not resolve",
                                                "Python 3.9 did not resolve"]
    assert all("numpy>=2" in n for n in notes)
    assert "# Python 3.9" in info.value.details


def test_the_cli_prints_one_line_and_writes_nothing(tmp_path):
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("numpy>=2\n")
    out = tmp_path / "ctx"
    env = dict(os.environ, NO_COLOR="1", XDG_STATE_HOME=str(tmp_path / "state"), SMENV_NO_LOCK_CACHE="1")
    proc = subprocess.run([sys.executable, "-m", "smenv", "generate", str(MODEL), "-r", str(reqs), "--python", "3.11",
                           "-o", str(out), "--json"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 8, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("smenv: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert "numpy>=2 (requirements.txt:1)" in errors[0] and len(errors[0].replace(str(tmp_path), "<tmp>")) < 300
    data = json.loads(proc.stdout)
    assert data["ok"] is False and data["error"]["kind"] == "lock_conflict"
    assert "depends on numpy" in data["error"]["details"] and Path(data["error"]["log"]).is_file()
    assert not out.exists()


def test_a_requirement_the_index_lacks_is_named_with_uvs_reason(tmp_path):
    """No "depends on" to quote: the sentence takes uv's first cause instead (uv's wording as of 0.13)."""
    from smenv.env.conflict import describe

    reqs = tmp_path / "requirements.txt"
    reqs.write_text("numpy<2\nsmenv-no-such-package==1.0\n")
    plan = resolve(inspect_model(MODEL), parse_requirements(reqs), ResolveOptions())
    uv_text = (
        "error: No solution found when resolving dependencies:\n"
        "  cause: Because smenv-no-such-package was not found in the package registry and you require "
        "smenv-no-such-package==1.0, we can conclude that your requirements are unsatisfiable.\n"
    )
    assert describe(uv_text, plan, "3.11") == (
        "no environment for Python 3.11: smenv-no-such-package==1.0 (requirements.txt:2) cannot be installed "
        "(smenv-no-such-package was not found in the package registry)"
    )
    assert describe("error: something else entirely", plan, "3.11") is None  # then uv's own lines are kept


def test_a_failure_conflict_py_cannot_read_is_clipped_not_a_wall():
    from smenv.env import lock as lock_module

    plan = resolve(inspect_model(MODEL), None, ResolveOptions())
    wall = "error: " + "the resolver said something long " * 40
    plain = lock_module._plainly(LockError(lock_module._explain(wall, "3.11"), (), wall), plan, "3.11")
    assert len(plain.message) == lock_module.MAX_MESSAGE and plain.message.endswith("…")
    assert plain.details == wall  # kept whole for --json and the log


def test_two_lines_of_one_package_are_both_named():
    """uv's "you require numpy==1.26.4 and numpy==1.24.0": the sentence named only the second line."""
    from dataclasses import replace

    from smenv.env.conflict import describe
    from smenv.env.plan import Package

    plan = resolve(inspect_model(MODEL), None, ResolveOptions())
    plan = replace(plan, packages=plan.packages + (Package("numpy==1.26.4", "requirements requirements.txt:1"),
                                                   Package("numpy==1.24.0", "requirements requirements.txt:2")))
    uv_text = ("error: No solution found when resolving dependencies\n  cause: Because you require numpy==1.26.4 and "
               "numpy==1.24.0, we can conclude that your requirements are unsatisfiable.\n")
    assert describe(uv_text, plan, "3.11") == (
        "no environment for Python 3.11: numpy==1.26.4 (requirements.txt:1) and numpy==1.24.0 (requirements.txt:2) "
        "cannot be installed together (you require numpy==1.26.4 and numpy==1.24.0)"
    )


# -- optional packages (env/lock.py, lock_plan) -----------------------------------------------------------


def _fake_lock(refuse: str, message: str = ""):
    """lock() as the seam: fails while the plan asks for `refuse`, else answers a recognisable result."""
    from smenv.env import lock as lock_module

    calls = []

    def fake(plan, progress=lambda m: None, cache=None):
        calls.append([p.name for p in plan.packages])
        if refuse in calls[-1]:
            raise LockError(message or f"{refuse} has no wheel for Python 3.9 in the version needed", log_path="/tmp/lock.log")
        return "the lock", ["a note from the lock"]

    return lock_module, fake, calls


def test_an_optional_package_that_does_not_lock_is_left_out_and_said_so(monkeypatch, tmp_path):
    from smenv.env.lock import lock_plan

    module, fake, calls = _fake_lock("tensorflow-transform")
    monkeypatch.setattr(module, "lock", fake)
    plan = resolve(inspect_model(CORPUS / "tfx-keras-serving"), None, ResolveOptions())
    smaller, the_lock, notes = lock_plan(plan, cache=tmp_path)
    assert the_lock == "the lock" and len(calls) == 2
    assert "tensorflow-transform" in calls[0] and "tensorflow-transform" not in calls[1]
    assert "tensorflow-transform" not in [p.name for p in smaller.packages]
    decision = next(d for d in smaller.decisions if d.topic == "companion:tensorflow-transform")
    assert decision.choice == "not installed" and decision.level == "warning"
    assert notes[0].startswith("warning: tensorflow-transform is not installed: it does not lock here "
                               "(tensorflow-transform has no wheel for Python 3.9 in the version needed; "
                               "uv's explanation: /tmp/lock.log), and the model uses none of its ops"), notes
    assert notes[-1] == "a note from the lock"
    # A rebuild does not resolve the refused plan again: it goes straight to the smaller one, saying the same.
    again = lock_plan(plan, cache=tmp_path)
    assert len(calls) == 3 and "tensorflow-transform" not in calls[2] and again[2] == notes


def test_an_optional_package_that_locks_is_kept(monkeypatch, tmp_path):
    from smenv.env.lock import lock_plan

    module, fake, calls = _fake_lock("no-such-package")
    monkeypatch.setattr(module, "lock", fake)
    plan = resolve(inspect_model(CORPUS / "tfx-keras-serving"), None, ResolveOptions())
    assert lock_plan(plan, cache=tmp_path) == (plan, "the lock", ["a note from the lock"]) and len(calls) == 1


def test_a_required_package_that_does_not_lock_is_the_error(monkeypatch, tmp_path):
    from smenv.env.lock import lock_plan

    module, fake, calls = _fake_lock("tensorflow-text")
    monkeypatch.setattr(module, "lock", fake)
    plan = resolve(inspect_model(FIXTURES / "models" / "tf215-text-savedmodel"), None, ResolveOptions(python="3.11"))
    with pytest.raises(LockError, match="tensorflow-text has no wheel"):
        lock_plan(plan, cache=tmp_path)
    assert len(calls) == 1


def test_the_note_on_a_left_out_package_is_short_whatever_the_lock_said(monkeypatch, tmp_path):
    from smenv.env.lock import lock_plan

    said = ("tensorflow-transform has no wheel for Python 3.9 in the version needed, and smenv builds only the source "
            "packages listed in smenv/data/source_builds.json (building an unknown sdist's metadata would run its code "
            "on the host): Because tfx-bsl==1.5.0 has no wheels with a matching Python ABI tag " + "and so on " * 50)
    module, fake, _ = _fake_lock("tensorflow-transform", said)
    monkeypatch.setattr(module, "lock", fake)
    _, _, notes = lock_plan(resolve(inspect_model(CORPUS / "tfx-keras-serving"), None, ResolveOptions()), cache=tmp_path)
    assert notes[0].startswith("warning: tensorflow-transform is not installed: it does not lock here (tensorflow-transform "
                               "has no wheel for Python 3.9 in the version needed, and smenv builds only the source packages "
                               "listed in smenv/data/source_builds.json …; uv's explanation: /tmp/lock.log), and "), notes[0]
    assert len(notes[0]) < 400
