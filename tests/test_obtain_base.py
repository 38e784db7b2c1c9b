"""Base images are obtained, not demanded: engine, then pull (base registry first), then Debian, else one error.

The order and the checks are tested at the seam (a fake engine behind the ContainerEngine methods
obtain_base uses, a fake Debian builder); the pulls are tested against a real registry on 127.0.0.1
(Debian's docker-registry) with the real engine, and a registry that never answers for the time limit.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest

from smenv.docker.engine import ImageInfo, SandboxRun
from smenv.docker.obtain_base import obtain_base_image, pull_candidates
from smenv.env import releases
from smenv.env.bases import BaseAvailability, mirrored, registry_option
from smenv.env.resolve import ResolveOptions, _Builder, _choose_python
from smenv.errors import BaseImageError, DebootstrapMissing, RegistryError, UsageError


def image(ref: str, python_env: str | None = None, label: str | None = None) -> ImageInfo:
    return ImageInfo(
        id="sha256:" + uuid.uuid5(uuid.NAMESPACE_URL, ref).hex * 2, tags=(ref,), size_bytes=1, created="",
        labels={"org.smenv.base.python": label} if label else {},
        env=(f"PYTHON_VERSION={python_env}",) if python_env else (),
    )


@dataclass
class FakeEngine:
    images: dict[str, ImageInfo] = field(default_factory=dict)
    registry: dict[str, ImageInfo] = field(default_factory=dict)  # what a pull of each ref brings
    pulls: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    pull_error: str | None = None
    python_run_output: str = "3.11.2\n"

    def image_info(self, ref):
        return self.images.get(ref)

    def pull(self, ref, progress=lambda m: None, timeout=None):
        self.pulls.append(ref)
        if self.pull_error:
            raise RegistryError(f"docker pull {ref}: {self.pull_error}")
        if ref not in self.registry:
            return False
        self.images[ref] = self.registry[ref]
        return True

    def tag_image(self, ref, tag):
        self.images[tag] = self.images[ref]

    def remove_image(self, ref, force=False):
        self.removed.append(ref)
        self.images.pop(ref, None)

    def run_sandboxed(self, ref, command, sandbox):
        self.runs.append(ref)
        return SandboxRun(0, self.python_run_output, "", False, False, 0.1)


BASE = "python:3.11-slim-bookworm"


def test_the_engines_image_is_used_without_pulling():
    engine = FakeEngine(images={BASE: image(BASE, "3.11.9")})
    got = obtain_base_image(engine, BASE, "3.11", registry="127.0.0.1:5000")
    assert got.how == "on the engine" and engine.pulls == []


def test_the_base_registry_is_tried_first_and_its_image_tagged_under_the_official_name():
    mirror = "127.0.0.1:5000/library/" + BASE
    engine = FakeEngine(registry={mirror: image(mirror, "3.11.9")})
    got = obtain_base_image(engine, BASE, "3.11", registry="127.0.0.1:5000")
    assert engine.pulls == [mirror] and got.how == f"pulled {mirror}"
    assert engine.image_info(BASE) is not None and got.info.id == engine.registry[mirror].id


def test_a_pulled_image_with_another_python_is_not_used_and_debian_builds_it():
    mirror = "127.0.0.1:5000/library/" + BASE
    engine = FakeEngine(registry={mirror: image(mirror, "3.12.1")})
    built = []

    def debian(python, tag, progress):
        built.append((python, tag))
        return image(tag, label="3.11.2")

    got = obtain_base_image(engine, BASE, "3.11", registry="127.0.0.1:5000", build_from_debian=debian)
    assert built == [("3.11", BASE)] and got.how == "built from Debian bookworm's python3"
    assert mirror in engine.removed and BASE not in engine.removed


def test_an_image_that_states_no_python_is_asked_by_running_python3():
    engine = FakeEngine(registry={BASE: image(BASE)}, python_run_output="3.11.4\n")
    got = obtain_base_image(engine, BASE, "3.11")
    assert engine.runs == [BASE] and got.how == f"pulled {BASE}"


def test_nothing_obtainable_is_one_error_saying_what_was_tried_and_what_to_do():
    engine = FakeEngine(pull_error="dial tcp: lookup registry-1.docker.io: no such host")

    def debian(python, tag, progress):
        raise DebootstrapMissing("debootstrap is not installed: `apt-get install debootstrap`")

    with pytest.raises(BaseImageError) as caught:
        obtain_base_image(engine, BASE, "3.11", registry="127.0.0.1:5000", build_from_debian=debian)
    message = caught.value.message
    assert caught.value.exit_code == 10 and "\n" not in message
    for expected in ("pulling 127.0.0.1:5000/library/python:3.11-slim-bookworm failed", "no such host",
                     "building it from Debian failed (debootstrap is not installed", "smenv base --python 3.11",
                     "--base-registry"):
        assert expected in message


def test_a_python_debian_lacks_is_never_sent_to_debootstrap():
    engine = FakeEngine()
    called = []
    with pytest.raises(BaseImageError, match="no Debian release ships Python 3.12"):
        obtain_base_image(engine, "python:3.12-slim-bookworm", "3.12",
                          build_from_debian=lambda *a: called.append(a))
    assert called == [] and engine.pulls == ["python:3.12-slim-bookworm"]


def test_the_pull_time_limit_comes_from_the_environment_and_a_bad_value_is_the_default(monkeypatch):
    from smenv.docker.obtain_base import DEFAULT_PULL_TIMEOUT_S, pull_timeout_default

    monkeypatch.setenv("SMENV_PULL_TIMEOUT", "30")
    assert pull_timeout_default() == 30
    for bad in ("soon", "-1", ""):
        monkeypatch.setenv("SMENV_PULL_TIMEOUT", bad)
        assert pull_timeout_default() == DEFAULT_PULL_TIMEOUT_S


def test_names_with_a_registry_host_are_pulled_as_given():
    assert pull_candidates("registry.example/ml/python:3.11", "127.0.0.1:5000") == ["registry.example/ml/python:3.11"]
    assert pull_candidates("nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04", "m.example/hub") == [
        "m.example/hub/nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04", "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"]
    assert mirrored("127.0.0.1:5000", BASE) == "127.0.0.1:5000/library/" + BASE


@pytest.mark.parametrize("bad", ["http://127.0.0.1:5000", "host:port", "a b", "reg/Upper"])
def test_a_malformed_base_registry_is_a_usage_error(bad):
    with pytest.raises(UsageError, match="HOST\\[:PORT\\]\\[/PATH\\]"):
        registry_option(bad)


# -- the Python choice prefers what this host can obtain --------------------------------------------


def choose(version: str, bases: BaseAvailability = BaseAvailability()):
    b = _Builder()
    candidates = _choose_python(releases.get(version), ResolveOptions(bases=bases), b)
    return candidates, b.decisions[-1]


def test_tf216_picks_311_not_312_and_says_why():
    candidates, decision = choose("2.16.2")
    assert candidates[0] == "3.11" and "3.12" not in candidates and decision.level == "info"
    assert "not 3.12: no Debian release ships Python 3.12" in decision.reason
    # How the base is obtained is the build's progress, not the plan's (the plan goes into the image).
    assert "whose base image this host can obtain" in decision.reason and "Debian bookworm" not in decision.reason


def test_a_base_registry_or_the_engines_image_makes_312_obtainable():
    assert choose("2.16.2", BaseAvailability(registry="127.0.0.1:5000"))[0][0] == "3.12"
    candidates, decision = choose("2.16.2", BaseAvailability(on_engine=("3.12",)))
    assert candidates[0] == "3.12" and "whose base image this host can obtain" in decision.reason


def test_tf210_picks_debians_39():
    assert choose("2.10.1")[0] == ("3.9",)


# -- real engine, real registry ---------------------------------------------------------------------


@pytest.mark.docker
def test_pulls_the_base_from_a_real_registry_and_checks_its_python(docker_engine, base_image_311, tmp_path):
    from registry_util import Registry

    name = f"smenv-h2-base-{uuid.uuid4().hex[:8]}"
    wanted = f"{name}:3.11-slim-bookworm"
    wrong = f"{name}:3.9-slim-bullseye"  # a registry copy whose Python is not the one asked for
    with Registry(tmp_path / "registry") as registry:
        made = []
        try:
            for ref in (wanted, wrong):
                remote = mirrored(registry.host, ref)
                docker_engine.tag_image(base_image_311.tag, remote)
                made.append(remote)
                docker_engine.push(remote)
                docker_engine.remove_image(remote)  # only the tag: the shared base image stays
            assert docker_engine.image_info(wanted) is None
            messages: list[str] = []
            got = obtain_base_image(docker_engine, wanted, "3.11", registry=registry.host, progress=messages.append)
            made.append(wanted)
            assert got.how == f"pulled {mirrored(registry.host, wanted)}"
            assert got.info.id == base_image_311.image_id and docker_engine.image_info(wanted).id == got.info.id
            assert any(m.startswith("base image: pulling 127.0.0.1:") for m in messages)

            with pytest.raises(BaseImageError, match=r"holds Python 3\.11\.\d+, not 3\.9: not used"):
                obtain_base_image(docker_engine, wrong, "3.9", registry=registry.host)
            assert docker_engine.image_info(mirrored(registry.host, wrong)) is None
            assert docker_engine.image_info(wrong) is None
        finally:
            for ref in made:
                if docker_engine.image_info(ref) is not None:
                    docker_engine.remove_image(ref)


@pytest.mark.docker
def test_a_registry_that_never_answers_is_abandoned_at_the_time_limit(docker_engine):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # takes connections and says nothing
        server.settimeout(0.5)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    ref = f"127.0.0.1:{server.getsockname()[1]}/library/smenv-h2-never:1"
    started = time.monotonic()
    try:
        with pytest.raises(RegistryError, match="not finished within 3 s"):
            docker_engine.pull(ref, timeout=3)
        assert time.monotonic() - started < 10
    finally:
        stop.set()
        for s in held:
            s.close()
        server.close()
