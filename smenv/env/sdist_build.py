"""Build the lock's sdist-only packages into wheels, each in a sandboxed container of the target base image.

A source distribution's build runs its setup.py, which is arbitrary code: it never runs on the host.
The container is of the image's own base (so the same Python and C library build it), started with no
network, as an unprivileged user without capabilities, with CPU-time, wall-time, memory and process
limits. The sdist (checked against the lock's sha256) and the build backend's wheels (setuptools and
wheel, downloaded on the host with their hashes required) are put in; the wheel is taken out. Built
wheels are cached by the sdist's sha256: the same sdist is built once per machine.

Hashes: the lock holds the sdist's sha256 (what the index published, and what uv resolved), so the
sdist is checked against it before it is built. The built wheel is new bytes no index knows, so the
lock the image installs names that package by the built wheel's own sha256 (install_lock_text), and
pip's --require-hashes holds for every file; the wheel's hash is recorded beside it in the cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name, parse_wheel_filename

from smenv.env.lock import Lock, default_index_url
from smenv.errors import DownloadError, SourceBuildFailed
from smenv.user_dirs import cache_dir

if TYPE_CHECKING:
    from smenv.docker.interface import ContainerEngine

WORK = "/build"  # in the container: src/ (the sdist), backend/ (wheels), out/ (the built wheel)
BUILD_UID = 10001  # the sandbox's user (docker/engine.py), owner of what is put in
# Limits for one build: pure-Python and small C extensions (wrapt) build in seconds.
CPU_SECONDS = 600
WALL_SECONDS = 900.0
MEMORY = "2g"
# What a build that tried to reach the network prints: the sandbox has no network interface but lo.
_NETWORK = re.compile(r"Network is unreachable|Temporary failure in name resolution|Name or service not known|"
                      r"Failed to establish a new connection|No matching distribution found", re.I)


@dataclass(frozen=True)
class BuiltWheel:
    name: str  # canonical name
    version: str
    sdist_sha256: str
    wheel: Path  # in the cache: built-wheels/<sdist sha256>/<wheel file>
    wheel_sha256: str


def backend_requirements() -> list[str]:
    """The build backend's pinned, hashed requirement lines (smenv/data/source_builds.json)."""
    data = json.loads(resources.files("smenv.data").joinpath("source_builds.json").read_text(encoding="utf-8"))
    return list(data["backend"])


def build_sources(engine: "ContainerEngine", base_image: str, the_lock: Lock, log_path: Path,
                  index_url: str | None = None, cache: Path | None = None,
                  progress: Callable[[str], None] = lambda m: None, base_name: str | None = None) -> list[BuiltWheel]:
    """A wheel for each package the lock holds as an sdist, built in the sandbox unless already cached."""
    cache = cache or cache_dir("built-wheels")
    built = []
    backend: list[Path] | None = None
    for name in the_lock.sources:
        version = the_lock.packages[name]
        allowed = the_lock.hashes.get(name, ())
        cached = _cached(cache, allowed, name, version)
        if cached:
            progress(f"{name} {version}: wheel built from source already cached ({cached.wheel.parent})")
            built.append(cached)
            continue
        sdist = download_sdist(name, version, allowed, index_url, cache_dir("sdists"))
        if backend is None:
            backend = download_backend(the_lock.python, cache_dir("wheels"))
        progress(f"building {name} {version} from source in a sandboxed container of {base_name or base_image[:19]} (no network)")
        built.append(build_wheel(engine, base_image, name, version, sdist, backend, cache, log_path))
    return built


def install_lock_text(lock_text: str, built: Sequence[BuiltWheel]) -> str:
    """The lock as the image installs it: each built package's sdist hashes replaced by its wheel's."""
    by_name = {b.name: b for b in built}
    out, skipping = [], False
    for line in lock_text.splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if m and canonicalize_name(m.group(1)) in by_name:
            b = by_name[canonicalize_name(m.group(1))]
            out.append(f"{m.group(1)}=={m.group(2)} \\")
            out.append(f"    --hash=sha256:{b.wheel_sha256}")
            skipping = True  # the sdist's --hash continuation lines follow
            continue
        if skipping and line.lstrip().startswith("--hash="):
            continue
        skipping = False
        out.append(line)
    return "\n".join(out) + ("\n" if lock_text.endswith("\n") else "")


def download_sdist(name: str, version: str, allowed: Sequence[str], index_url: str | None, cache: Path) -> Path:
    """The sdist whose sha256 the lock allows, from the index's JSON page (PEP 691), checked before use.

    Not `pip download`: for an sdist it prepares metadata, which runs setup.py on the host.
    """
    for sha in allowed:
        for p in (cache / sha).glob("*"):
            if p.is_file() and _sha256(p) == sha:
                return p
    base = (index_url or default_index_url()).rstrip("/")
    request = urllib.request.Request(f"{base}/{canonicalize_name(name)}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            files = json.load(response).get("files", [])
    except (OSError, ValueError) as exc:
        raise DownloadError(f"the source distribution of {name} {version} could not be found on {base}: {exc}") from None
    for f in files:
        sha = (f.get("hashes") or {}).get("sha256")
        if sha in allowed and not f.get("filename", "").endswith(".whl"):
            url = urllib.parse.urljoin(f"{base}/{canonicalize_name(name)}/", f["url"])
            target = cache / sha / Path(f["filename"]).name
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            try:
                with urllib.request.urlopen(url, timeout=300) as response, open(tmp, "wb") as out:
                    shutil.copyfileobj(response, out)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise DownloadError(f"downloading {f['filename']} failed: {exc}") from None
            if _sha256(tmp) != sha:
                tmp.unlink()
                raise DownloadError(f"{f['filename']} does not match the lock's sha256 {sha[:12]}…: not used")
            os.replace(tmp, target)
            return target
    raise DownloadError(f"{base} serves no source distribution of {name} {version} with the lock's hash")


def download_backend(python: str, cache: Path) -> list[Path]:
    """setuptools and wheel as wheels, hash-checked (pip download --require-hashes on the host)."""
    cache.mkdir(parents=True, exist_ok=True)
    lines = backend_requirements()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        req.write("\n".join(lines) + "\n")
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                               "--require-hashes", "--python-version", python, "--dest", str(cache),
                               "--progress-bar", "off", "-r", req.name], capture_output=True, text=True, timeout=600)
    finally:
        os.unlink(req.name)
    if proc.returncode != 0:
        raise DownloadError(f"the build backend (setuptools, wheel) could not be downloaded: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    files = []
    for line in lines:
        name, version = line.split()[0].split("==")
        found = sorted(cache.glob(f"{name}-{version}-*.whl"))
        if not found:
            raise DownloadError(f"the build backend's {name} {version} wheel was not downloaded")
        files.append(found[0])
    return files


def build_script(sdist_name: str) -> str:
    """The commands run in the sandbox: a venv with the backend, then pip wheel without the index."""
    # SOURCE_DATE_EPOCH (1980-01-01, the zip format's first day): the wheel package then stamps every
    # member with it, so two builds of one sdist give the same bytes. Two smenv runs building the same
    # sdist at once (CI beside a user) replaced each other's cached wheel between hashing and install,
    # and pip refused the install; with equal bytes that race is harmless.
    return " && ".join([
        "export SOURCE_DATE_EPOCH=315532800 PYTHONHASHSEED=0",
        f"cd {WORK}",
        f"python3 -m venv {WORK}/venv",
        f"{WORK}/venv/bin/pip install --no-index --no-deps --no-cache-dir --disable-pip-version-check -q {WORK}/backend/*.whl",
        f"{WORK}/venv/bin/pip wheel --no-deps --no-index --no-build-isolation --no-cache-dir --disable-pip-version-check "
        f"-w {WORK}/out {WORK}/src/{sdist_name}",
    ])


def build_wheel(engine: "ContainerEngine", base_image: str, name: str, version: str, sdist: Path,
                backend: Sequence[Path], cache: Path, log_path: Path,
                sandbox=None) -> BuiltWheel:
    """Build one sdist in the sandbox; the wheel lands in the cache only when the build succeeded."""
    from smenv.docker.engine import Sandbox

    sandbox = sandbox or Sandbox(memory=MEMORY, timeout_s=WALL_SECONDS, pids=256, cpu_seconds=CPU_SECONDS)
    sdist_sha = _sha256(sdist)
    run, taken = engine.run_sandboxed_with_files(
        base_image, ["/bin/sh", "-c", build_script(sdist.name)], sandbox,
        _inputs(sdist, backend), take=f"{WORK}/out",
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"# build {name} {version} from {sdist.name} on {base_image} ({run.seconds} s, exit {run.exit_code})\n"
                  f"{run.stdout}{run.stderr}\n")
    what = f"building {name} {version} from source failed"
    if run.timed_out:
        raise SourceBuildFailed(f"{what}: it ran longer than {sandbox.timeout_s:.0f} s and was stopped (full log: {log_path})", str(log_path))
    if run.oom_killed:
        raise SourceBuildFailed(f"{what}: it used more than {sandbox.memory} of memory (full log: {log_path})", str(log_path))
    output = run.stdout + run.stderr
    if run.exit_code != 0 or taken is None:
        lines = [l.strip() for l in output.splitlines() if l.strip()]
        if _NETWORK.search(output):
            reason = "it tried to reach the network, which the build sandbox does not have"
        elif run.exit_code in (137, 152) and sandbox.cpu_seconds:  # SIGKILL/SIGXCPU at RLIMIT_CPU
            reason = f"it was stopped (exit {run.exit_code}; CPU-time limit {sandbox.cpu_seconds} s)"
        else:
            # pip quotes the build's own output between "╰─> [N lines of output]" and "[end of output]":
            # its last line is the build's own reason, more telling than pip's "metadata-generation-failed".
            ends = [i for i, l in enumerate(lines) if l == "[end of output]" and i > 0 and "lines of output" not in lines[i - 1]]
            errors = [l for l in lines if l.startswith(("ERROR", "error:")) or "Error" in l]
            reason = (lines[ends[-1] - 1] if ends else (errors or lines or [f"exit status {run.exit_code}"])[-1])[:300]
        raise SourceBuildFailed(f"{what}: {reason} (full log: {log_path})", str(log_path), tuple(lines[-15:]))
    wheel = _store(taken, name, version, cache / sdist_sha)
    return BuiltWheel(canonicalize_name(name), version, sdist_sha, wheel, _sha256(wheel))


def _inputs(sdist: Path, backend: Sequence[Path]) -> Iterator[bytes]:
    """build/src/<sdist>, build/backend/*.whl and an empty build/out, owned by the sandbox's user."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        root = WORK.strip("/")
        for d in (root, f"{root}/src", f"{root}/backend", f"{root}/out"):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, BUILD_UID, BUILD_UID
            tar.addfile(info)
        for path, where in [(sdist, "src"), *((w, "backend") for w in backend)]:
            info = tarfile.TarInfo(f"{root}/{where}/{path.name}")
            info.size, info.mode, info.uid, info.gid = path.stat().st_size, 0o644, BUILD_UID, BUILD_UID
            with open(path, "rb") as f:
                tar.addfile(info, f)
    yield buf.getvalue()  # a few MiB at most: the backend's wheels and one sdist


def _store(archive: bytes, name: str, version: str, directory: Path) -> Path:
    """The one wheel of `name` `version` in the taken tar, written into the cache atomically."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".whl")]
        for m in members:
            filename = Path(m.name).name
            try:
                wname, wversion, _, _ = parse_wheel_filename(filename)
            except ValueError:
                continue
            if canonicalize_name(wname) == canonicalize_name(name) and str(wversion) == str(version):
                directory.mkdir(parents=True, exist_ok=True)
                target = directory / filename
                if target.is_file():  # built meanwhile by another run: keep that file, its hash may be in use
                    digest = _sha256(target)
                    memo = directory / (filename + ".sha256")
                    if memo.is_file() and memo.read_text().strip() == digest:
                        return target
                tmp = directory / (filename + ".part")
                tmp.write_bytes(tar.extractfile(m).read())
                os.replace(tmp, target)
                (directory / (filename + ".sha256")).write_text(_sha256(target) + "\n")
                return target
    raise SourceBuildFailed(f"building {name} {version} from source made no wheel of {name} {version}")


def _cached(cache: Path, allowed: Sequence[str], name: str, version: str) -> BuiltWheel | None:
    for sha in allowed:
        for wheel in sorted((cache / sha).glob("*.whl")):
            memo = wheel.with_name(wheel.name + ".sha256")
            digest = _sha256(wheel)
            if memo.is_file() and memo.read_text().strip() == digest:  # a half-written or altered file is rebuilt
                return BuiltWheel(canonicalize_name(name), version, sha, wheel, digest)
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()
