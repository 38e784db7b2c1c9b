"""A Debian python3 base image for hosts with no registry: debootstrap, trim, tar, `docker import`.

The image is tagged as the official `python:X.Y-slim-SUITE` image, so the Dockerfiles smenv generates
work unchanged where a registry is reachable; the locally made one carries the label
`org.smenv.base.origin=debootstrap`. It differs from the official image: its Python is Debian's
(/usr/bin/python3, "externally managed" per PEP 668, no `python` or `pip` commands). A Dockerfile
that works on both calls `python3` and installs into a venv made with `python3 -m venv`.

The root filesystem tarball is cached (default ~/.cache/smenv/base/) per suite and architecture,
so only the first build on a machine runs debootstrap.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections import deque
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from smenv.docker.engine import Engine
from smenv.errors import (
    BaseImageError,
    DebootstrapMissing,
    DockerError,
    DockerUnavailable,
    NeedsRoot,
    UnsupportedPython,
)
from smenv.user_dirs import cache_dir

# The Python each Debian release ships as python3 (bookworm: 3.11.2, trixie: 3.13.5, bullseye: 3.9.2).
DEBIAN_FOR_PYTHON = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
ORIGIN_LABEL = "org.smenv.base.origin"
LABEL_PREFIX = "org.smenv.base."

# What `docker import` cannot take from a tarball. PATH and LANG match the official python images.
IMAGE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)

# Like Debian's slim images: later `apt-get install`s in the generated Dockerfile stay small too.
# Copyright files are kept: the licences travel with the binaries.
DPKG_EXCLUDES = """\
# smenv base image (like debian:*-slim): no docs, man pages or translations
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
"""
TRIMMED_DIRS = (  # contents removed, directories kept
    "usr/share/man",
    "usr/share/groff",
    "usr/share/info",
    "usr/share/lintian",
    "usr/share/linda",
    "usr/share/locale",
    "var/lib/apt/lists",
    "dev",  # Docker mounts its own /dev; device nodes would need mknod in the engine
)

# Suite names that identify a Debian archive in the host's apt sources (Ubuntu's archive has none of them).
DEBIAN_SUITE_NAMES = {
    "buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
    "oldoldstable", "oldstable", "stable", "testing", "unstable",
}  # fmt: skip
# The engine reports Go's architecture names; debootstrap and the cache use Debian's.
GO_TO_DEBIAN_ARCH = {"amd64": "amd64", "arm64": "arm64", "386": "i386", "ppc64le": "ppc64el"}
MACHINE_TO_DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "i386", "ppc64le": "ppc64el"}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BaseImage:
    tag: str
    image_id: str
    size_bytes: int
    python: str  # X.Y
    suite: str
    reused: bool  # the tag existed and was kept: nothing was built
    python_full: str | None = None  # X.Y.Z, where known (from the image's label, or the check run)
    origin: str | None = None  # "debootstrap" for smenv's own; None for an image from a registry
    rootfs_cached: bool = False  # the root filesystem came from the cache: debootstrap did not run
    tarball: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # per step: debootstrap, trim, tar, import, verify, total

    def to_json(self) -> dict:
        return asdict(self)


def suite_for(python: str) -> str:
    """The Debian suite whose python3 is `python` (X.Y or X.Y.Z); UnsupportedPython for the others."""
    suite = DEBIAN_FOR_PYTHON.get(_major_minor(python))
    if suite is None:
        supported = ", ".join(f"{v} ({s})" for v, s in DEBIAN_FOR_PYTHON.items())
        raise UnsupportedPython(
            f"no Debian release ships Python {python}: smenv builds base images for Python {supported}; "
            "for another version pass --base-image with an image your Docker engine already has"
        )
    return suite


def default_base_image(python: str) -> str:
    """The base image tag the generated Dockerfile names: the official `python:X.Y-slim-SUITE`."""
    return f"python:{_major_minor(python)}-slim-{suite_for(python)}"


def default_cache_dir() -> Path:
    return cache_dir("base")


def host_mirror(apt_dir: str | Path = "/etc/apt") -> str:
    """The host's Debian mirror (first `deb` source for a Debian suite, not -security), else deb.debian.org.

    Reading the host's choice matters on machines that reach Debian only through a local mirror or proxy.
    """
    apt_dir = Path(apt_dir)
    files = [apt_dir / "sources.list"]
    if (apt_dir / "sources.list.d").is_dir():
        files += sorted(p for p in (apt_dir / "sources.list.d").iterdir() if p.suffix in (".list", ".sources"))
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        entries = _deb822_entries(text) if path.suffix == ".sources" else _one_line_entries(text)
        for uri, suites in entries:
            if _is_debian_main_archive(uri, suites):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def require_debootstrap(search_path: str | None = None) -> str:
    """The debootstrap command, after checking this process may run it (root); typed errors otherwise.

    It is looked up in PATH plus /usr/sbin and /sbin, which ordinary users' PATH often lacks.
    """
    if search_path is None:
        search_path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which("debootstrap", path=search_path)
    if found is None:
        raise DebootstrapMissing(
            "debootstrap is not installed: `apt-get install debootstrap` "
            "(or pass --base-image with an image your Docker engine already has)"
        )
    if os.geteuid() != 0:
        raise NeedsRoot(
            "building a base image runs debootstrap, which needs root: rerun as root (sudo), "
            "or pass --base-image with an image your Docker engine already has"
        )
    return found


def build_base_image(
    engine: Engine,
    python: str,
    tag: str | None = None,
    mirror: str | None = None,
    cache_dir: str | Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> BaseImage:
    """Make (or reuse) the Debian python3 base image for `python` on `engine`; see the module docstring.

    An existing `tag` is kept unless `force`. The root filesystem tarball is reused from `cache_dir`
    when present (delete it there to fetch fresh packages); `mirror` matters only when debootstrap runs.
    Each new image is checked by running `python3 -m venv` in a container without network; an image
    that fails is removed again, and a forced rebuild gives the tag back to the previous image.
    """
    started = time.monotonic()
    python = _major_minor(python)
    suite = suite_for(python)
    tag = tag or default_base_image(python)
    say = progress or (lambda _message: None)

    if not force and (existing := _reusable(engine, tag, python, suite, say, started)):
        return existing

    arch = _engine_debian_arch(engine)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    stem = f"debian-{suite}-{arch}"
    tarball, sidecar = cache / f"{stem}.tar", cache / f"{stem}.json"

    # One build per suite at a time, across processes: a second one waits and then reuses the result.
    with _locked(cache / f".{stem}.lock", say):
        if not force and (existing := _reusable(engine, tag, python, suite, say, started)):
            return existing
        seconds: dict[str, float] = {}
        facts = _cached_facts(tarball, sidecar)
        cached = facts is not None
        if cached:
            say(f"using the cached root filesystem {tarball} (delete it to fetch fresh packages)")
        else:
            facts = _make_rootfs(suite, python, arch, mirror, cache, tarball, sidecar, say, seconds)

        previous = engine.image_info(tag)
        say(f"docker import {tarball.name} as {tag} ({tarball.stat().st_size / 2**20:.0f} MiB)")
        t = time.monotonic()
        labels = {
            ORIGIN_LABEL: "debootstrap",
            LABEL_PREFIX + "suite": suite,
            LABEL_PREFIX + "python": facts["python_full"],
            LABEL_PREFIX + "debian-package": facts["debian_package"],
            LABEL_PREFIX + "mirror": facts["mirror"],
        }
        info = engine.import_rootfs(tarball, tag, IMAGE_CHANGES, labels)
        seconds["import"] = time.monotonic() - t

        say("checking `python3 -m venv` inside the image (no network)")
        t = time.monotonic()
        try:
            python_full = _check_venv(engine, info.id, python)
        except BaseException as exc:
            # Never leave a broken image under the base tag: later builds would use it without a word.
            with suppress(DockerError):
                engine.remove_image(info.id, force=True)
                if previous is not None:
                    engine.tag_image(previous.id, tag)
            if isinstance(exc, BaseImageError):
                raise BaseImageError(f"{exc.message} (made from {tarball}: delete it to rebuild from Debian)") from exc
            raise
        seconds["verify"] = time.monotonic() - t

        if previous is not None and previous.id != info.id:
            try:  # the old image now has no tag; it may still serve a container or a child image
                engine.remove_image(previous.id)
            except DockerError:
                pass
    seconds["total"] = time.monotonic() - started
    say(f"{tag}: {info.size_bytes / 2**20:.0f} MiB, Python {python_full}, {seconds['total']:.1f} s")
    return BaseImage(
        tag=tag,
        image_id=info.id,
        size_bytes=info.size_bytes,
        python=python,
        suite=suite,
        reused=False,
        python_full=python_full,
        origin="debootstrap",
        rootfs_cached=cached,
        tarball=str(tarball),
        seconds={k: round(v, 2) for k, v in seconds.items()},
    )


def _reusable(engine: Engine, tag: str, python: str, suite: str, say: Progress, started: float) -> BaseImage | None:
    info = engine.image_info(tag)
    if info is None:
        return None
    labelled = info.labels.get(LABEL_PREFIX + "python")
    if labelled and _major_minor(labelled) != python:
        raise BaseImageError(f"{tag} exists but holds Python {labelled}, not {python}: pass --force to replace it")
    say(f"{tag} exists ({info.id[7:19]}): reusing it")
    return BaseImage(
        tag=tag,
        image_id=info.id,
        size_bytes=info.size_bytes,
        python=python,
        suite=info.labels.get(LABEL_PREFIX + "suite", suite),
        reused=True,
        python_full=info.labels.get(LABEL_PREFIX + "python"),
        origin=info.labels.get(ORIGIN_LABEL),
        seconds={"total": round(time.monotonic() - started, 2)},
    )


def _make_rootfs(
    suite: str,
    python: str,
    arch: str,
    mirror: str | None,
    cache: Path,
    tarball: Path,
    sidecar: Path,
    say: Progress,
    seconds: dict[str, float],
) -> dict:
    """debootstrap SUITE, trim it, tar it into the cache; returns the facts later imports label the image with."""
    debootstrap = require_debootstrap()
    host_arch = _host_debian_arch()
    if host_arch != arch:
        raise BaseImageError(
            f"the Docker engine runs {arch} but this host is {host_arch}, and debootstrap builds for the host: "
            "pass --base-image with an image your Docker engine already has"
        )
    mirror = (mirror or host_mirror()).rstrip("/")
    work = Path(tempfile.mkdtemp(prefix=f"work-{suite}-", dir=cache))  # not /tmp: it may be noexec or nodev
    rootfs = work / "rootfs"
    log = cache / f"debootstrap-{suite}-{arch}.log"
    try:
        say(f"debootstrap {suite} from {mirror} (about a minute; log: {log})")
        t = time.monotonic()
        _debootstrap(debootstrap, suite, rootfs, mirror, log, say)
        seconds["debootstrap"] = time.monotonic() - t

        t = time.monotonic()
        freed = _trim(rootfs)
        seconds["trim"] = time.monotonic() - t
        say(f"removed {freed / 2**20:.0f} MiB of docs, man pages, translations and apt lists")

        # The interpreter's own package (python3.11 3.11.2-6+deb12u6), not the python3 metapackage.
        package = _dpkg_version(rootfs, f"python{python}")
        if package is None:
            found = _dpkg_version(rootfs, "python3") or "no python3"
            raise BaseImageError(f"{suite} from {mirror} installed {found}, not Python {python}")
        upstream = package.split(":")[-1].split("-")[0].split("+")[0]

        say(f"tar {tarball.name}")
        t = time.monotonic()
        partial = tarball.with_suffix(".tar.partial")
        _write_tar(rootfs, partial)
        seconds["tar"] = time.monotonic() - t
        facts = {
            "suite": suite,
            "arch": arch,
            "mirror": mirror,
            "debian_package": f"python{python} {package}",
            "python_full": upstream,
        }
        sidecar.write_text(json.dumps(facts, indent=2) + "\n")
        os.replace(partial, tarball)  # only a complete tarball ever carries the cached name
        return facts
    finally:
        _remove_work_dir(work)


def _debootstrap(command: str, suite: str, rootfs: Path, mirror: str, log: Path, say: Progress) -> None:
    argv = [command, "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, str(rootfs), mirror]
    env = dict(os.environ, LC_ALL="C", DEBIAN_FRONTEND="noninteractive")
    env["PATH"] = os.pathsep.join([env.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])  # chroot, ldconfig
    errors: deque[str] = deque(maxlen=3)
    with open(log, "w") as log_file:
        log_file.write(" ".join(argv) + "\n")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            for line in proc.stdout:
                log_file.write(line)
                line = line.rstrip()
                if line.startswith("I: "):
                    say("debootstrap: " + line[3:])
                elif line.startswith(("E: ", "W: ")):
                    say("debootstrap: " + line)
                    if line.startswith("E: "):
                        errors.append(line[3:])
            code = proc.wait()
        except BaseException:
            proc.terminate()  # its own exit trap unmounts /proc and /sys in the target
            proc.wait()
            raise
        if code != 0:
            inner = rootfs / "debootstrap" / "debootstrap.log"  # the package-level detail, when it got that far
            if inner.is_file():
                log_file.write("\n--- " + str(inner) + "\n" + inner.read_text(errors="replace"))
    if code != 0:
        reason = "; ".join(errors) or f"exit status {code}"
        raise BaseImageError(f"debootstrap {suite} from {mirror} failed: {reason} (log: {log})")


def _trim(rootfs: Path) -> int:
    """Remove what a base image never uses; returns the bytes freed."""
    freed = 0
    for rel in TRIMMED_DIRS:
        d = rootfs / rel
        if d.is_dir():
            for child in d.iterdir():
                freed += _remove(child)
    doc = rootfs / "usr/share/doc"
    if doc.is_dir():
        for path in sorted(doc.rglob("*"), reverse=True):  # children before their directories
            if path.name == "copyright" or (path.is_dir() and not path.is_symlink() and any(path.iterdir())):
                continue
            freed += _remove(path)
    leftovers = ("var/cache/apt/*.bin", "var/cache/apt/archives/*.deb", "var/cache/debconf/*-old", "var/lib/dpkg/*-old")
    for pattern in leftovers:
        for path in rootfs.glob(pattern):
            freed += _remove(path)
    for path in (rootfs / "var/log").rglob("*"):
        if path.is_file() and not path.is_symlink():
            freed += _remove(path)
    # debootstrap copies the host's resolv.conf and hostname; Docker supplies its own at run and build time.
    for rel in ("etc/resolv.conf", "etc/hostname"):
        if (rootfs / rel).is_file() and not (rootfs / rel).is_symlink():
            (rootfs / rel).write_text("")
    excludes = rootfs / "etc/dpkg/dpkg.cfg.d"
    excludes.mkdir(parents=True, exist_ok=True)
    (excludes / "smenv-slim").write_text(DPKG_EXCLUDES)
    return freed


def _remove(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        size = sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir() or p.is_symlink())
        shutil.rmtree(path)
        return size
    size = path.lstat().st_size
    path.unlink()
    return size


def _write_tar(rootfs: Path, out: Path) -> None:
    """A tarball of `rootfs`: entries in name order (tarfile.add sorts), numeric owners only."""

    def numeric(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uname = info.gname = ""  # the image's /etc/passwd, not the host's, must name the owners
        return info

    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for child in sorted(rootfs.iterdir()):
            if child.name == "debootstrap":  # debootstrap's own leftovers, when a step kept them
                continue
            tar.add(child, arcname=child.name, recursive=True, filter=numeric)


def _dpkg_version(rootfs: Path, package: str) -> str | None:
    status = (rootfs / "var/lib/dpkg/status").read_text()
    for stanza in status.split("\n\n"):
        if re.search(rf"^Package: {re.escape(package)}$", stanza, re.M):
            m = re.search(r"^Version: (\S+)$", stanza, re.M)
            if m:
                return m.group(1)
    return None


def _cached_facts(tarball: Path, sidecar: Path) -> dict | None:
    """What the cached tarball was made from, or None when there is no usable cache entry."""
    if not tarball.is_file():
        return None
    try:
        facts = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None
    keys = ("suite", "mirror", "debian_package", "python_full")
    return facts if isinstance(facts, dict) and all(isinstance(facts.get(k), str) for k in keys) else None


def _check_venv(engine: Engine, image: str, python: str) -> str:
    """Run `python3 -m venv` and the venv's pip in a throwaway container; returns the full Python version."""
    script = "python3 --version && python3 -m venv /tmp/v && /tmp/v/bin/pip --version"
    try:
        result = engine.run_throwaway(image, ["sh", "-c", script], network="none", timeout=120)
    except DockerUnavailable:
        raise
    except DockerError as exc:  # the engine could not start it: no sh, a broken loader, ...
        raise BaseImageError(f"the new image does not start: {exc.message}") from exc
    last = " ".join(result.output.split())[-300:]
    if result.exit_code != 0:
        raise BaseImageError(f"`{script}` failed in the new image (exit {result.exit_code}): {last}")
    version = re.search(r"Python (\d+\.\d+\.\d+)", result.output)
    pip = re.search(r"^pip \S+ from .*\(python (\d+\.\d+)\)", result.output, re.M)
    if not version or not pip or _major_minor(version.group(1)) != python or pip.group(1) != python:
        raise BaseImageError(f"the new image does not run Python {python} with pip in a venv: {last}")
    return version.group(1)


def _remove_work_dir(work: Path) -> None:
    # rmtree must never descend into a bind mount (a target /dev bound to the host's would be emptied).
    if not work.exists():
        return
    for mount in sorted(_mounts_below(work), reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    if _mounts_below(work):
        raise BaseImageError(f"{work} still has file systems mounted inside: unmount them, then delete it")
    shutil.rmtree(work, ignore_errors=True)


def _mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[1].replace("\\040", " ") for line in lines if len(line.split()) > 1]
    return [p for p in points if p.startswith(prefix)]


@contextmanager
def _locked(lock_path: Path, say: Progress) -> Iterator[None]:
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another smenv process building the same base image ({lock_path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _engine_debian_arch(engine: Engine) -> str:
    return GO_TO_DEBIAN_ARCH.get(engine.arch, engine.arch)


def _host_debian_arch() -> str:
    try:
        out = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return MACHINE_TO_DEBIAN_ARCH.get(platform.machine(), platform.machine())


def _major_minor(python: str) -> str:
    m = re.fullmatch(r"\s*(\d+)\.(\d+)(?:\.\d+)?\s*", str(python))
    return f"{m.group(1)}.{m.group(2)}" if m else str(python).strip()


def _one_line_entries(text: str) -> Iterator[tuple[str, list[str]]]:
    for line in text.splitlines():
        line = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0])  # drop comments and [option=value] blocks
        words = line.split()
        if len(words) >= 3 and words[0] == "deb":
            yield words[1], [words[2]]


def _deb822_entries(text: str) -> Iterator[tuple[str, list[str]]]:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:  # a continuation line
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            yield uri, fields.get("suites", "").split()


def _is_debian_main_archive(uri: str, suites: list[str]) -> bool:
    if not uri.startswith(("http://", "https://")) or "security" in uri:
        return False
    return any(s.split("-")[0].split("/")[0] in DEBIAN_SUITE_NAMES and not s.endswith("-security") for s in suites)
