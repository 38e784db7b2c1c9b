"""--fix: a mechanical fix named by the diagnosis is applied and the image rebuilt once.

The Docker engine and the in-container verifier are faked at their seams (this is about the control
flow); resolution and locking are real. tests/test_docker_build.py proves real builds and diagnoses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES
from smenv import pipeline
from smenv.docker.engine import BuildResult, ImageInfo
from smenv.env.resolve import ResolveOptions
from smenv.verify.diagnose import Diagnosis
from smenv.verify.runner import Verdict


class FakeEngine:
    def __init__(self):
        self.builds: list[tuple[str, str | None, str]] = []

    def image_exists(self, ref):
        return not ref.startswith("smenv-deps:")  # the base image is there; dependencies get built

    def image_info(self, ref):
        return ImageInfo(id="sha256:" + "0" * 64, tags=(ref,), size_bytes=1, labels={}, created="")

    def build(self, context, tag, log_path, target=None, progress=None):
        self.builds.append((tag, target, (Path(context) / "requirements.lock").read_text()))
        return BuildResult("sha256:" + "0" * 64, tag, 0.1, 1, 0)


@pytest.fixture
def verdicts(monkeypatch):
    """The verifier's answers, in order: first a missing companion, then success."""
    answers = [
        Verdict(False, "img", {"ok": False}, Diagnosis("op_not_registered", 20, "op X missing", "add it", {}, ("tensorflow-text==2.15.*",)), 1.0),
        Verdict(True, "img", {"ok": True}, None, 1.0),
    ]
    calls = []

    def fake_verify(engine, image, sandbox, progress=None, **kwargs):
        calls.append(image)
        return answers[len(calls) - 1]

    monkeypatch.setattr("smenv.verify.runner.verify_image", fake_verify)
    return calls


def test_fix_adds_the_named_package_and_rebuilds_once(verdicts, tmp_path):
    engine = FakeEngine()
    built = pipeline.build(pipeline.ModelInput(FIXTURES / "models" / "tf215-savedmodel"), None, ResolveOptions(),
                           fix=True, engine=engine)
    assert built.exit_code == 0 and built.fixed == ("tensorflow-text==2.15.*",)
    assert len(verdicts) == 2
    first_lock, second_lock = engine.builds[1][2], engine.builds[3][2]
    assert "tensorflow-text==" not in first_lock and "tensorflow-text==2.15." in second_lock
    assert any(p.origin == "smenv --fix" for p in built.generated.plan.packages)


def test_without_fix_the_diagnosis_is_the_result(verdicts, tmp_path):
    built = pipeline.build(pipeline.ModelInput(FIXTURES / "models" / "tf215-savedmodel"), None, ResolveOptions(),
                           fix=False, engine=FakeEngine())
    assert built.exit_code == 20 and built.fixed == () and len(verdicts) == 1
