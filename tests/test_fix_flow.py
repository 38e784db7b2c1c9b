"""--fix: a mechanical fix named by the diagnosis is applied and the image rebuilt once.

The Docker engine and the in-container verifier are faked at their seams (this is about the control
flow); resolution and locking are real. tests/test_docker_build.py proves real builds and diagnoses.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from conftest import FIXTURES
from smenv import pipeline
from smenv.docker.engine import BuildResult, Engine, ImageInfo, Sandbox, SandboxRun
from smenv.docker.interface import ContainerEngine
from smenv.env.resolve import ResolveOptions
from smenv.verify.diagnose import Diagnosis
from smenv.verify.runner import Verdict


class FakeEngine:
    """A ContainerEngine: images always exist except dependency images, which it 'builds' instantly."""

    def __init__(self):
        self.builds: list[tuple[str, str | None, str]] = []

    def image_exists(self, ref: str) -> bool:
        return not ref.startswith("smenv-deps:")  # the base image is there; dependencies get built

    def image_info(self, ref: str) -> ImageInfo | None:
        return ImageInfo(id="sha256:" + "0" * 64, tags=(ref,), size_bytes=1, labels={}, created="")

    def build(
        self,
        context: Path,
        tag: str,
        log_path: Path,
        target: str | None = None,
        progress: Callable[[str], None] = lambda message: None,
    ) -> BuildResult:
        self.builds.append((tag, target, (Path(context) / "requirements.lock").read_text()))
        return BuildResult("sha256:" + "0" * 64, tag, 0.1, 1, 0)

    def read_file(self, image: str, path: str, limit: int = 16 << 20) -> bytes:
        raise NotImplementedError("verification is faked at verify_image (the verdicts fixture)")

    def run_sandboxed(self, image: str, command: Sequence[str], sandbox: Sandbox) -> SandboxRun:
        raise NotImplementedError("verification is faked at verify_image (the verdicts fixture)")


def protocol_methods() -> list[str]:
    return [name for name, value in vars(ContainerEngine).items() if inspect.isfunction(value) and not name.startswith("_")]


def shape(function) -> list[tuple]:
    """A signature as names, kinds, annotations (strings: every module involved defers them) and whether
    each parameter has a default; the default values themselves may differ (a fresh lambda each)."""
    signature = inspect.signature(function)
    parameters = [(p.name, p.kind, p.annotation, p.default is p.empty) for p in signature.parameters.values()]
    return parameters + [("return", signature.return_annotation)]


@pytest.mark.parametrize("implementation", [Engine, FakeEngine])
def test_the_real_engine_and_the_fake_implement_the_same_interface(implementation):
    methods = protocol_methods()
    assert {"build", "image_exists", "image_info", "read_file", "run_sandboxed"} <= set(methods)
    for name in methods:
        assert shape(getattr(implementation, name)) == shape(getattr(ContainerEngine, name)), name


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
