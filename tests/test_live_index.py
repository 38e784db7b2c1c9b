"""The few tests that use the live package index, as users do (marked `network`; CI runs them too).

Every other test resolves against the frozen index in tests/index, so their results do not move when
the index does. These check what the frozen data cannot: that the live index still serves what was
frozen, and that a real lock of the example model still comes out of it. They assert what must hold
whatever the index publishes next, never an exact package set.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from conftest import REPO
from frozen_index import DATA, JSON_TYPE
from smenv import pipeline
from smenv.env.lock import default_index_url, first_wheel_cutoff
from smenv.env.resolve import ResolveOptions

pytestmark = pytest.mark.network


def live_page(project: str) -> dict:
    request = urllib.request.Request(f"{default_index_url().rstrip('/')}/{project}/", headers={"Accept": JSON_TYPE})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


@pytest.mark.parametrize("project", ["tensorflow-cpu", "numpy", "protobuf"])
def test_the_live_index_still_serves_the_frozen_files(project):
    """Index files never change once uploaded: the frozen hashes and upload times must still be served."""
    frozen = json.loads((DATA / "simple" / f"{project}.json").read_text())["files"]
    live = {f["filename"]: f for f in live_page(project)["files"]}
    missing = [f["filename"] for f in frozen if f["filename"] not in live]
    assert not missing, f"the live index no longer has {missing[:5]}"
    for f in frozen:
        assert live[f["filename"]]["hashes"]["sha256"] == f["hashes"]["sha256"], f["filename"]
        assert live[f["filename"]].get("upload-time") == f.get("upload-time"), f["filename"]


def test_the_example_model_locks_against_the_live_index(monkeypatch):
    monkeypatch.setenv("SMENV_NO_LOCK_CACHE", "1")
    assert "127.0.0.1" not in default_index_url()  # the frozen index is not in the way
    example = REPO / "examples" / "half_plus_two"
    result = pipeline.generate(pipeline.ModelInput(example), example / "requirements.txt", ResolveOptions(), None)
    assert result.lock.packages["tensorflow-cpu"] == "2.14.0"
    assert "tensorflow" not in result.lock.packages  # the CPU swap held
    assert all(result.lock.hashes.get(name) for name in result.lock.packages)


def test_first_wheel_cutoffs_come_from_the_live_upload_times():
    # wrapt published no cp311 wheel before 1.15.0 (2023-02-27); the first after 2023-01-01 is that one.
    cutoff = first_wheel_cutoff("wrapt", "3.11", "2023-01-01T00:00:00Z", None)
    assert cutoff is not None and "2023-02-27" <= cutoff[:10] <= "2023-03-31"
