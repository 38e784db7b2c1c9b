"""Source-only dependencies: locked by the sdist's hash without building anything on the host, built into
a wheel in a sandboxed container of the target base image, installed by the built wheel's own hash.

The lock tests run against the frozen index (offline); the build tests (marked docker) run real
containers: termcolor 1.1.0 from PyPI, and tiny local sdists whose setup.py fails or reaches for the network.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from smenv.docker.engine import THROWAWAY_LABEL, Sandbox, SandboxRun
from smenv.env import lock as lock_module
from smenv.env.lock import SOURCES_HEADER, Lock, LockError, _compile, _lock_with_wheels
from smenv.env.requirements import IndexOptions
from smenv.env.sdist_build import BuiltWheel, build_sources, build_wheel, install_lock_text
from smenv.env.wheels import _without
from smenv.errors import SourceBuildFailed

TERMCOLOR_SDIST = "1d6d69ce66211143803fbc56652b41d73b4a400a2891d7bf7a1cdf4c02de613b"  # termcolor-1.1.0.tar.gz


def plan_for(index_url=None, as_of="2021-05-13T23:59:59Z", packages=("termcolor==1.1.0",), find_links=()):
    """The fields of an EnvironmentPlan that the lock reads."""
    return SimpleNamespace(
        as_of=as_of, cutoff_exempt=(), excludes=(), constraints=(), tensorflow_version="2.5.3",
        tensorflow_package="tensorflow-cpu", packages=[SimpleNamespace(requirement=r) for r in packages],
        index=IndexOptions(index_url=index_url, find_links=tuple(find_links), no_index=bool(find_links)),
    )


def local_sdist(directory: Path, name: str, setup_body: str) -> Path:
    """A tiny sdist `name`-1.0.tar.gz whose setup.py runs `setup_body` before setup()."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-1.0.tar.gz"
    files = {
        f"{name}-1.0/setup.py": f"{setup_body}\nfrom setuptools import setup\nsetup(name={name!r}, version='1.0', py_modules=[{name.replace('-', '_')!r}])\n",
        f"{name}-1.0/{name.replace('-', '_')}.py": "VALUE = 1\n",
        f"{name}-1.0/PKG-INFO": f"Metadata-Version: 1.1\nName: {name}\nVersion: 1.0\n",
    }
    with tarfile.open(path, "w:gz") as tar:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


# -- locking (offline, frozen index) ------------------------------------------------------------------


def test_an_allowed_sdist_is_locked_by_its_sha256(tmp_path):
    the_lock = _compile(plan_for(), "3.9", tmp_path, "lock", ["termcolor==1.1.0"], [], (), sources=(("termcolor", "1.1.0"),))
    assert the_lock.packages == {"termcolor": "1.1.0"}
    assert the_lock.hashes["termcolor"] == (TERMCOLOR_SDIST,)


def test_uv_never_runs_an_allowed_sdist_on_the_host(tmp_path, monkeypatch):
    """The sdist's setup.py would leave a mark on the host if uv built it to read its metadata; the
    metadata smenv gives uv (source_builds.json) means it never does."""
    mark = tmp_path / "setup-py-ran"
    links = tmp_path / "links"
    local_sdist(links, "smenv-probe-src", f"open({str(mark)!r}, 'w').write('ran')")
    monkeypatch.setattr(lock_module, "source_builds", lambda: {"smenv-probe-src": {"1.0": {"requires_dist": [], "why": "test"}}})
    plan = plan_for(find_links=(str(links),))
    the_lock = _compile(plan, "3.9", tmp_path, "lock", ["smenv-probe-src"], [], (), cutoff=False,
                        sources=(("smenv-probe-src", "1.0"),))
    assert the_lock.packages == {"smenv-probe-src": "1.0"}
    assert not mark.exists()


def test_a_pin_without_any_wheel_is_locked_as_an_sdist_with_a_note():
    # TensorFlow 2.4-2.6 pin termcolor~=1.1.0: lifting the cut-off finds termcolor 2.x wheels, which the
    # pin excludes, so the second pass allows 1.1.0 as an sdist.
    the_lock, notes = _lock_with_wheels(plan_for(packages=("termcolor~=1.1.0", "six==1.16.0")), "3.9")
    assert the_lock.sources == ("termcolor",)
    assert the_lock.hashes["termcolor"] == (TERMCOLOR_SDIST,)
    assert SOURCES_HEADER + "termcolor==1.1.0" in the_lock.text
    assert any(n.startswith("termcolor 1.1.0 has no wheel") and "sdist's sha256" in n for n in notes), notes
    # Read back from the text (the lock cache keeps only the text).
    assert Lock.from_text(the_lock.download_text, "3.9").sources == ("termcolor",)


def test_an_sdist_only_package_smenv_does_not_know_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(lock_module, "source_builds", lambda: {})
    with pytest.raises(LockError, match=r"termcolor has no wheel for Python 3\.9 .*source_builds\.json"):
        _lock_with_wheels(plan_for(packages=("termcolor~=1.1.0",)), "3.9")


LOCK = (
    "# header\n" + SOURCES_HEADER + "termcolor==1.1.0\n"
    "six==1.16.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via -r requirements.in\n"
    "termcolor==1.1.0 \\\n    --hash=sha256:" + TERMCOLOR_SDIST + "\n    # via -r requirements.in\n"
)


def test_the_image_installs_the_built_wheel_by_its_own_hash():
    built = BuiltWheel("termcolor", "1.1.0", TERMCOLOR_SDIST, Path("termcolor-1.1.0-py3-none-any.whl"), "b" * 64)
    text = install_lock_text(LOCK, [built])
    assert "termcolor==1.1.0 \\\n    --hash=sha256:" + "b" * 64 + "\n" in text
    assert TERMCOLOR_SDIST not in text and "--hash=sha256:" + "a" * 64 in text


def test_the_host_download_leaves_sdists_out():
    text = _without(LOCK, ("termcolor",))
    assert "six==1.16.0" in text and "termcolor==1.1.0 \\" not in text and TERMCOLOR_SDIST not in text


# -- building: the outcomes, behind the engine interface (no Docker) -----------------------------------


class ScriptedEngine:
    """Answers run_sandboxed_with_files with a scripted result; records what it was given."""

    def __init__(self, run: SandboxRun, taken: bytes | None = None):
        self.run, self.taken, self.calls = run, taken, []

    def run_sandboxed_with_files(self, image, command, sandbox, files, take, take_limit=256 << 20):
        self.calls.append((image, command, sandbox, b"".join(files), take))
        return self.run, self.taken


@pytest.mark.parametrize("run, words", [
    (SandboxRun(None, "", "", True, False, 900.0), r"ran longer than 900 s and was stopped"),
    (SandboxRun(1, "", "urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name resolution>", False, False, 1.0),
     r"tried to reach the network, which the build sandbox does not have"),
    (SandboxRun(1, "", "    raise RuntimeError('no compiler')\nRuntimeError: no compiler\nerror: subprocess-exited-with-error", False, False, 1.0),
     r"error: subprocess-exited-with-error"),
    (SandboxRun(137, "", "", False, True, 1.0), r"used more than 2g of memory"),
])
def test_a_failed_build_is_one_line_naming_the_package_and_the_log(tmp_path, run, words):
    sdist = local_sdist(tmp_path / "src", "smenv-probe-src", "")
    engine = ScriptedEngine(run)
    log = tmp_path / "build.log"
    with pytest.raises(SourceBuildFailed, match=r"^building smenv-probe-src 1\.0 from source failed: (it )?" + words) as info:
        build_wheel(engine, "python:3.9-slim-bullseye", "smenv-probe-src", "1.0", sdist, [], tmp_path / "cache", log)
    assert info.value.exit_code == 13 and str(log) in info.value.message and "\n" not in info.value.message
    assert not (tmp_path / "cache").exists()  # nothing half-built is cached
    (_, _, sandbox, _, _), = engine.calls
    assert sandbox.cpu_seconds > 0 and sandbox.timeout_s > 0 and sandbox.memory


# -- building for real (Docker) ------------------------------------------------------------------------


def our_containers(engine) -> set[str]:
    """Throw-away containers that ran a source build (others may come and go on a shared engine)."""
    return {c.id for c in engine.client.containers.list(all=True, filters={"label": THROWAWAY_LABEL})
            if "pip wheel" in " ".join(c.attrs.get("Config", {}).get("Cmd") or ())}


@pytest.mark.docker
def test_termcolor_is_built_in_the_sandbox_and_installed_by_the_wheels_hash(docker_engine, base_image_311, tmp_path):
    from smenv.docker.install import install_layer
    from smenv.render.dockerfile import install_script

    before = our_containers(docker_engine)
    the_lock = Lock.from_text(LOCK.replace("six==1.16.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via -r requirements.in\n", ""), "3.11")
    assert the_lock.sources == ("termcolor",)
    cache = tmp_path / "built-wheels"
    built = build_sources(docker_engine, base_image_311.tag, the_lock, tmp_path / "build.log",
                          index_url="https://pypi.org/simple", cache=cache)
    (wheel,) = built
    assert wheel.wheel.name == "termcolor-1.1.0-py3-none-any.whl" and wheel.wheel.parent == cache / TERMCOLOR_SDIST
    assert (cache / TERMCOLOR_SDIST / (wheel.wheel.name + ".sha256")).read_text().strip() == wheel.wheel_sha256
    # The second time it comes from the cache, without a container.
    said = []
    assert build_sources(docker_engine, base_image_311.tag, the_lock, tmp_path / "build.log", cache=cache,
                         progress=said.append) == built and "already cached" in said[0]
    # pip installs it under --require-hashes, with no index and no network.
    layer = install_layer(docker_engine, base_image_311.tag, install_script("3.11", True, []),
                          install_lock_text(the_lock.text, built), [wheel.wheel], tmp_path / "venv.tar", tmp_path / "install.log")
    with tarfile.open(layer.path) as tar:
        assert any(n.endswith("site-packages/termcolor.py") for n in tar.getnames())
    assert our_containers(docker_engine) == before


@pytest.mark.docker
@pytest.mark.parametrize("setup_body, words, wall", [
    ("raise SystemExit('smenv-probe: this sdist refuses to build')", r"this sdist refuses to build", None),
    ("import urllib.request; urllib.request.urlopen('http://pypi.org/simple/', timeout=5)",
     r"tried to reach the network, which the build sandbox does not have", None),
    # 60 s of wall time rather than the default's minutes, so the hang ends soon (a real build of this
    # sdist takes 5-30 s, depending on the machine's load).
    ("import time; time.sleep(3600)", r"it ran longer than 60 s and was stopped", 60.0),
], ids=["fails", "reaches-for-the-network", "hangs"])
def test_a_build_that_fails_hangs_or_reaches_for_the_network_stops_cleanly(docker_engine, base_image_311, tmp_path,
                                                                            setup_body, words, wall):
    from smenv.docker.engine import Sandbox
    from smenv.env.sdist_build import CPU_SECONDS, MEMORY, WALL_SECONDS, download_backend
    from smenv.user_dirs import cache_dir

    before = our_containers(docker_engine)
    sdist = local_sdist(tmp_path / "src", "smenv-probe-src", setup_body)
    log = tmp_path / "build.log"
    sandbox = Sandbox(memory=MEMORY, timeout_s=wall or WALL_SECONDS, pids=256, cpu_seconds=CPU_SECONDS)
    with pytest.raises(SourceBuildFailed, match=words) as info:
        build_wheel(docker_engine, base_image_311.tag, "smenv-probe-src", "1.0", sdist,
                    download_backend("3.11", cache_dir("wheels")), tmp_path / "cache", log, sandbox=sandbox)
    assert info.value.exit_code == 13 and str(log) in info.value.message
    assert "smenv-probe-src" in log.read_text()
    assert not (tmp_path / "cache").exists() and our_containers(docker_engine) == before


@pytest.mark.docker
def test_a_tf25_corpus_model_builds_with_its_sdists_and_loads(docker_engine, tmp_path):
    """The proof end to end: TF 2.5.0 pins termcolor~=1.1.0 and wrapt~=1.12.1 (sdists only); on Python 3.9
    (Debian bullseye) both are built in the sandbox and the model loads and answers."""
    from conftest import CORPUS
    from smenv import pipeline
    from smenv.docker.base_image import build_base_image
    from smenv.env.resolve import ResolveOptions

    build_base_image(docker_engine, "3.9")
    tag = "smenv-h5-sdist/tfrust-tf25:test"
    try:
        built = pipeline.build(pipeline.ModelInput(CORPUS / "tfrust-regression-savedmodel"), None, ResolveOptions(),
                               engine=docker_engine, tag=tag)
        assert built.verdict.ok
        assert built.verdict.result["tensorflow"] == "2.5.0" and built.verdict.result["python"].startswith("3.9")
        assert set(built.generated.lock.sources) == {"termcolor", "wrapt"}
    finally:
        docker_engine.remove_image(tag, force=True)


@pytest.mark.docker  # the engine is reached before the lock; nothing is built
@pytest.mark.parametrize("flag", ["online", "context_dir"])
def test_online_and_context_builds_refuse_source_packages_in_one_line(flag, docker_engine, tmp_path):
    """Neither an --online install (from the index) nor a hand-built --context can hold the wheels built
    in the sandbox: refused before anything is built, naming the packages (exit 2)."""
    from conftest import CORPUS
    from smenv import pipeline
    from smenv.env.resolve import ResolveOptions
    from smenv.errors import UsageError

    kwargs = {"online": True} if flag == "online" else {"context_dir": tmp_path / "context"}
    with pytest.raises(UsageError, match=r"^termcolor, wrapt exist\(s\) only as source .* build without it$") as info:
        pipeline.build(pipeline.ModelInput(CORPUS / "tfrust-regression-savedmodel"), None, ResolveOptions(),
                       engine=docker_engine, **kwargs)
    assert info.value.exit_code == 2 and not (tmp_path / "context").exists()
