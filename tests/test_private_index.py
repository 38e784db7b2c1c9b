"""A private package index that wants credentials, end to end: lock, download, build, verify, and the
password is nowhere in the image.

The index is pypiserver on 127.0.0.1 (tests/pypiserver_util.py) with an htpasswd file, serving exactly
the wheels tests/fixtures/models/tf215-savedmodel needs (hard links to the ones a PyPI lock downloaded,
plus the full `tensorflow` wheel the CPU lock's first pass checks against). Nothing may reach PyPI while
smenv works: the proxies point at a closed port (only 127.0.0.1 is exempt), PIP_INDEX_URL and
UV_INDEX_URL point at a closed port too (so smenv must pass the requirements' own --index-url on), pip's
config files are ignored, and the wheel and uv caches start empty. Like most private indexes,
pypiserver records no upload times (PEP 700), which smenv's as-of cut-off depends on.
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO
from pypiserver_util import PrivateIndex
from smenv import pipeline
from smenv.env.resolve import ResolveOptions
from smenv.env.wheels import default_cache, download_wheels

# The index is filled with wheels downloaded from the live file host (once, then cached).
pytestmark = pytest.mark.network
MODEL = FIXTURES / "models" / "tf215-savedmodel"
DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens, every connection is refused at once


# -- the index -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A directory of hard links to every wheel the tf215 model's lock names, got through PyPI once (cached)."""
    generated = pipeline.generate(pipeline.ModelInput(MODEL), None, ResolveOptions(), None)
    wheels = download_wheels(generated.lock, generated.plan)
    files = list(wheels.files)
    # The CPU lock checks companion packages against the real `tensorflow` first (smenv/env/lock.py):
    # the index must hold that wheel too, though the image never installs it.
    tf = generated.plan.tensorflow_version
    extra = default_cache().parent / "test-index"
    extra.mkdir(parents=True, exist_ok=True)
    python = generated.lock.python
    if not list(extra.glob(f"tensorflow-{tf}-cp{python.replace('.', '')}-*.whl")):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", python,
             "--implementation", "cp", "--abi", f"cp{python.replace('.', '')}", "--platform", "manylinux2014_x86_64",
             "--platform", "manylinux_2_17_x86_64", "--dest", str(extra), "--progress-bar", "off", f"tensorflow=={tf}"],
            check=True, capture_output=True, timeout=1800,
        )
    files += list(extra.glob(f"tensorflow-{tf}-cp{python.replace('.', '')}-*.whl"))
    packages = tmp_path_factory.mktemp("index") / "packages"
    packages.mkdir()
    for f in files:
        try:
            os.link(f, packages / f.name)
        except OSError:
            shutil.copyfile(f, packages / f.name)
    return generated, packages


@pytest.fixture(scope="module")
def index(served, tmp_path_factory):
    _, packages = served
    user = f"smenv-{secrets.token_hex(3)}"
    password = f"pw{secrets.token_urlsafe(24)}"  # [A-Za-z0-9_-]: the same in a URL, quoted or not
    with PrivateIndex(packages, user, password, tmp_path_factory.mktemp("pypiserver")) as running:
        yield running
    assert running.proc.poll() is not None  # stopped


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No way to PyPI but through a mistake that fails: dead proxies and default indexes, empty caches."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, DEAD)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in ("PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX"):
        monkeypatch.setenv(name, f"{DEAD}/simple/")
    for name in ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX", "PIP_FIND_LINKS", "UV_FIND_LINKS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def requirements(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(f"--index-url {url}\n")
    return path


def secrets_of(index: PrivateIndex) -> list[bytes]:
    """The password as it could appear: raw, and inside the Basic authorization header of user:password."""
    basic = base64.b64encode(f"{index.user}:{index.password}".encode())
    return [index.password.encode(), basic]


def run_smenv(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smenv", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


# -- tests -----------------------------------------------------------------------------------------------


def test_the_index_wants_credentials(index):
    assert index.status() == 401
    assert index.status("tensorflow-cpu/") == 401
    assert index.status("tensorflow-cpu/", auth=(index.user, "wrong")) in (401, 403)
    assert index.status("tensorflow-cpu/", auth=(index.user, index.password)) == 200


def test_lock_works_against_an_index_without_upload_times(served, index, isolated):
    from_pypi, _ = served
    req = requirements(isolated, index.url)
    generated = pipeline.generate(pipeline.ModelInput(MODEL), req, ResolveOptions(), None)
    # The private index holds exactly the PyPI lock's versions: the same lock comes out.
    assert generated.lock.packages == from_pypi.lock.packages
    assert generated.lock.python == from_pypi.lock.python
    note = next(n for n in generated.notes if "no upload times" in n)
    assert "127.0.0.1" in note and "2024-03-08" in note
    assert "not limited by date" in generated.lock.text.splitlines()[1]
    served_log = index.log()
    assert "/simple/tensorflow-cpu/" in served_log and "/simple/tensorflow/" in served_log
    everything = json.dumps(generated.plan_json) + generated.lock.text + "\n".join(generated.notes)
    assert index.password not in everything


def test_a_wrong_password_fails_in_one_line_without_echoing_it(index, isolated):
    wrong = f"wrong{secrets.token_hex(8)}"
    req = requirements(isolated, index.url.replace(index.password, wrong))
    proc = run_smenv(["generate", str(MODEL), "-r", str(req), "-o", str(isolated / "ctx")])
    assert proc.returncode == 8, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("smenv: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert wrong not in proc.stdout + proc.stderr and index.password not in proc.stdout + proc.stderr
    assert not (isolated / "ctx").exists()


def test_online_build_with_credentials_is_refused_without_echoing_them(index, isolated):
    req = requirements(isolated, index.url)
    proc = run_smenv(["build", str(MODEL), "-r", str(req), "--online", "--no-verify"], timeout=120)
    assert proc.returncode == 7, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("smenv: error:")]
    assert len(errors) == 1 and "credentials" in errors[0]
    assert index.password not in proc.stdout + proc.stderr


def test_a_generated_context_holds_no_credentials(index, isolated):
    req = requirements(isolated, index.url)
    out = isolated / "ctx"
    generated = pipeline.generate(pipeline.ModelInput(MODEL), req, ResolveOptions(), out)
    # Without --offline, smenv switches to the downloaded form on its own and says why.
    assert any("carries credentials" in n for n in generated.notes)
    assert list((out / "wheels").glob("tensorflow_cpu-*.whl")) and "--no-index" in (out / "Dockerfile").read_text()
    leaked = [str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and index.password.encode() in p.read_bytes()]
    assert leaked == []


@pytest.mark.docker
def test_build_from_the_private_index_loads_and_the_password_is_nowhere_in_the_image(
    index, isolated, base_image_311, docker_engine
):
    req = requirements(isolated, index.url)
    tag = f"smenv-test/private-index:{uuid.uuid4().hex[:12]}"
    # The private index serves the PyPI lock's packages, so the lock, and with it the dependency image's
    # tag, equals the one an earlier test may have built from PyPI. Remove that image: this build must
    # download every wheel through the index.
    planned = pipeline.generate(pipeline.ModelInput(MODEL), req, ResolveOptions(), None, offline=True)
    deps = pipeline.dependency_image_tag(planned, docker_engine.image_info(planned.base_image).id, online=False)
    docker_engine.remove_image(deps, force=True)
    try:
        built = pipeline.build(pipeline.ModelInput(MODEL), req, ResolveOptions(), tag=tag, engine=docker_engine)
        assert built.verdict is not None and built.verdict.ok, built.verdict.to_json()
        assert built.verdict.result["tensorflow"] == "2.15.1"
        # The wheels came from the private index, with the credentials, into the empty cache.
        assert docker_engine.image_exists(deps)
        assert "/packages/tensorflow_cpu-2.15.1-" in index.log()
        assert any((isolated / "cache" / "smenv" / "wheels").glob("tensorflow_cpu-2.15.1-*.whl"))

        needles = secrets_of(index)
        info = docker_engine.client.api.inspect_image(tag)
        history = docker_engine.client.api.history(tag)
        metadata = json.dumps([info, history]).encode()
        assert not [n for n in needles if n in metadata], "credentials in the image's config, labels or history"
        assert not [n for n in needles if n in built.log_path.read_bytes()], "credentials in the build log"

        # Every byte of `docker save`: the image config, the manifest, and each file in each layer.
        controls = {
            "config": info["Config"]["Labels"]["org.smenv.lock.digest"].encode(),  # a label: in the config
            "layer": b"smenv-verify:",  # a line of verify.py: inside a layer
            "redacted": b"http://***@127.0.0.1",  # smenv.json's redacted index URL: inside a layer
        }
        found = scan_saved_image(docker_engine, tag, needles + list(controls.values()))
        assert found[controls["config"]] and any(where.endswith(".json") for where in found[controls["config"]])
        assert any("layer.tar!" in where for where in found[controls["layer"]]), "the scan did not read the layers"
        assert any("layer.tar!" in where for where in found[controls["redacted"]])
        leaks = {n.decode(): found[n] for n in needles if found[n]}
        assert leaks == {}, f"credentials in the saved image: {leaks}"
    finally:
        try:
            docker_engine.client.api.remove_image(tag, force=True)
        except Exception:
            pass


# -- scanning `docker save` ------------------------------------------------------------------------------


class _ChunkStream(io.RawIOBase):
    """A readable file over the SDK's chunk iterator, so `docker save` is scanned without a copy on disk."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def scan_saved_image(engine, image: str, needles: list[bytes]) -> dict[bytes, list[str]]:
    """For each needle, where it occurs: member names, link targets, PAX headers and contents, layer tars opened."""
    found: dict[bytes, list[str]] = {n: [] for n in needles}
    stream = io.BufferedReader(_ChunkStream(engine.client.api.get_image(image, chunk_size=1 << 20)), 1 << 20)
    _scan_tar(stream, needles, "", found)
    return found


def _scan_tar(fileobj, needles: list[bytes], where: str, found: dict[bytes, list[str]]) -> None:
    overlap = max(len(n) for n in needles) - 1
    with tarfile.open(fileobj=fileobj, mode="r|") as tar:
        for member in tar:
            here = f"{where}{member.name}"
            meta = "\n".join([member.name, member.linkname, *(f"{k}={v}" for k, v in member.pax_headers.items())]).encode()
            for n in needles:
                if n in meta:
                    found[n].append(here + " (name)")
            if not member.isfile():
                continue
            f = tar.extractfile(member)
            if member.name.endswith("layer.tar"):
                _scan_tar(f, needles, here + "!", found)
                continue
            tail = b""
            while block := f.read(1 << 20):
                window = tail + block
                for n in needles:
                    if n in window and here not in found[n]:
                        found[n].append(here)
                tail = window[-overlap:] if overlap else b""
