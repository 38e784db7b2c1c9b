"""--fix: a mechanical fix named by the diagnosis is applied and the image rebuilt once.

The Docker engine and the in-container verifier are faked at their seams (this is about the control
flow); resolution and locking are real. tests/test_docker_build.py proves real builds and diagnoses.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import tarfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import pytest

from conftest import FIXTURES
from smenv import pipeline
from smenv.docker.engine import BuildResult, Engine, ImageInfo, Sandbox, SandboxRun, Service
from smenv.docker.interface import ContainerEngine
from smenv.docker.layers import Layer
from smenv.env.resolve import ResolveOptions
from smenv.verify.diagnose import Diagnosis
from smenv.verify.runner import Verdict
from smenv.verify.serving import ServeCheck


class FakeEngine:
    """A ContainerEngine: the base image is there; dependency images appear once 'installed' and loaded."""

    def __init__(self):
        self.installs: list[str] = []  # the lock text of each install
        self.loaded: dict[str, ImageInfo] = {}

    def image_exists(self, ref: str) -> bool:
        return self.image_info(ref) is not None

    def has_layers(self, diff_ids: Sequence[str]) -> bool:
        return any(info.diff_ids[:len(diff_ids)] == tuple(diff_ids) for info in self.loaded.values())

    def image_info(self, ref: str) -> ImageInfo | None:
        if ref.startswith("smenv-deps:"):
            return self.loaded.get(ref)
        return self.loaded.get(ref) or ImageInfo(id="sha256:" + "0" * 64, tags=(ref,), size_bytes=1, labels={}, created="",
                                                 diff_ids=("sha256:" + "1" * 64,), architecture="amd64", os="linux")

    def build(
        self,
        context: Path,
        tag: str,
        log_path: Path,
        target: str | None = None,
        progress: Callable[[str], None] = lambda message: None,
    ) -> BuildResult:
        raise NotImplementedError("CPU images are assembled, not built with a Dockerfile")

    def install_layer(
        self,
        base_image: str,
        script: str,
        lock_text: str,
        wheel_files: Sequence[Path] | None,
        out: Path,
        log_path: Path,
        *,
        env: Sequence[tuple[str, str]] = (),
        network: bool = False,
        progress: Callable[[str], None] = lambda message: None,
    ) -> Layer:
        self.installs.append(lock_text)
        out.write_bytes(lock_text.encode())
        return Layer(out, "sha256:" + hashlib.sha256(lock_text.encode()).hexdigest(), out.stat().st_size)

    def load(self, archive: Iterable[bytes], what: str) -> list[str]:
        with tarfile.open(fileobj=io.BytesIO(b"".join(archive))) as tar:
            manifest = json.loads(tar.extractfile("manifest.json").read())
            for image in manifest:
                config = tar.extractfile(image["Config"]).read()
                image_id = "sha256:" + hashlib.sha256(config).hexdigest()
                diff_ids = tuple(json.loads(config)["rootfs"]["diff_ids"])
                for tag in image["RepoTags"]:
                    self.loaded[tag] = ImageInfo(id=image_id, tags=(tag,), size_bytes=1, labels={}, created="",
                                                 diff_ids=diff_ids, architecture="amd64", os="linux")
        return [t for image in manifest for t in image["RepoTags"]]

    def save(self, ref: str) -> Iterator[bytes]:
        raise NotImplementedError("not part of the --fix flow")

    def tag_image(self, ref: str, tag: str) -> None:
        self.loaded[tag] = self.image_info(ref)

    def remove_image(self, ref: str, force: bool = False) -> bool:
        return self.loaded.pop(ref, None) is not None

    def push(self, tag: str, progress: Callable[[str], None] = lambda message: None) -> str:
        raise NotImplementedError("not part of the --fix flow")

    def pull(self, ref: str, progress: Callable[[str], None] = lambda message: None,
             timeout: float | None = None) -> bool:
        raise NotImplementedError("not part of the --fix flow")

    def registry_has(self, ref: str) -> bool:
        raise NotImplementedError("not part of the --fix flow")

    def read_file(self, image: str, path: str, limit: int = 16 << 20) -> bytes:
        raise NotImplementedError("verification is faked at verify_image (the verdicts fixture)")

    def run_sandboxed(self, image: str, command: Sequence[str], sandbox: Sandbox) -> SandboxRun:
        raise NotImplementedError("verification is faked at verify_image (the verdicts fixture)")

    def run_sandboxed_with_files(self, image: str, command: Sequence[str], sandbox: Sandbox, files: Iterable[bytes],
                                 take: str, take_limit: int = 256 << 20) -> tuple[SandboxRun, bytes | None]:
        raise NotImplementedError("no source builds in the --fix flow")

    def start_service(self, image: str, sandbox: Sandbox, env: Sequence[tuple[str, str]] = (), publish: int | None = None,
                      name: str | None = None) -> Service:
        raise NotImplementedError("the serving check is faked at check_serving (the verdicts fixture)")


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
    assert {"build", "image_exists", "image_info", "read_file", "run_sandboxed", "install_layer", "load", "push"} <= set(methods)
    for name in methods:
        assert shape(getattr(implementation, name)) == shape(getattr(ContainerEngine, name)), name


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch, tmp_path):
    """The fake engine installs nothing, so no wheel is fetched (these tests run with no network)."""
    from smenv.env.wheels import Wheels

    monkeypatch.setattr("smenv.env.wheels.download_wheels", lambda *a, **k: Wheels(tmp_path, (), 0))


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
    monkeypatch.setattr("smenv.verify.serving.check_serving", lambda *args, **kwargs: ServeCheck(True, 1.0, {"ok": True}, 0, 0.5))
    return calls


def test_fix_adds_the_named_package_and_rebuilds_once(verdicts, tmp_path):
    engine = FakeEngine()
    built = pipeline.build(pipeline.ModelInput(FIXTURES / "models" / "tf215-savedmodel"), None, ResolveOptions(),
                           fix=True, engine=engine)
    assert built.exit_code == 0 and built.fixed == ("tensorflow-text==2.15.*",)
    assert len(verdicts) == 2
    first_lock, second_lock = engine.installs
    assert "tensorflow-text==" not in first_lock and "tensorflow-text==2.15." in second_lock
    assert any(p.origin == "smenv --fix" for p in built.generated.plan.packages)


def test_without_fix_the_diagnosis_is_the_result(verdicts, tmp_path):
    built = pipeline.build(pipeline.ModelInput(FIXTURES / "models" / "tf215-savedmodel"), None, ResolveOptions(),
                           fix=False, engine=FakeEngine())
    assert built.exit_code == 20 and built.fixed == () and len(verdicts) == 1
