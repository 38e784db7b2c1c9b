"""Download the locked wheels on the host, so the image build needs no network and no credentials.

`pip download` runs with the host's own pip configuration (pip.conf, PIP_* variables, netrc, keyring,
proxy, CA bundle), so a private index with credentials works; the credentials stay on the host.
Hashes are required, exactly as in the image. Wheels are cached between builds; each build gets
only the files its lock names, for its Python and platform.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from smenv.env.lock import Lock
from smenv.env.plan import EnvironmentPlan
from smenv.env.target import PIP_PLATFORMS, wheel_tags
from smenv.errors import DownloadError
from smenv.user_dirs import cache_dir




@dataclass(frozen=True)
class Wheels:
    directory: Path  # the cache directory holding (at least) every wheel of the lock
    files: tuple[Path, ...]  # exactly the lock's wheels
    size_bytes: int


def default_cache() -> Path:
    return cache_dir("wheels")


def download_wheels(the_lock: Lock, plan: EnvironmentPlan, cache: Path | None = None,
                    progress: Callable[[str], None] = lambda m: None) -> Wheels:
    cache = cache or default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    lock_file = cache / f".lock-{the_lock.digest.split(':')[1][:16]}.txt"
    # Direct references kept: the host fetches them. Packages locked as sdists are left out: pip download
    # would prepare their metadata, which runs setup.py on the host; env/sdist_build.py fetches and builds them.
    lock_file.write_text(_without(the_lock.download_text or the_lock.text, the_lock.sources))
    abi = "cp" + the_lock.python.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes",
           "--python-version", the_lock.python, "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none",
           "--dest", str(cache), "--progress-bar", "off", "-r", str(lock_file)]
    for platform in PIP_PLATFORMS:
        cmd += ["--platform", platform]
    if plan.index.index_url:
        cmd += ["--index-url", plan.index.index_url]
    for url in plan.index.extra_index_urls:
        cmd += ["--extra-index-url", url]
    for link in plan.index.find_links:
        cmd += ["--find-links", link]
    _drop_stale(cache, the_lock)
    wanted = {n: v for n, v in the_lock.packages.items() if n not in the_lock.sources}
    missing = [n for n in wanted if not _cached(cache, n, the_lock.packages[n], the_lock.python)]
    if missing:
        progress(f"downloading {len(missing)} of {len(wanted)} wheels (cached in {cache})")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        lock_file.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise DownloadError(f"pip download failed: {_last_error(proc.stderr or proc.stdout)}")
    else:
        lock_file.unlink(missing_ok=True)
        progress(f"all {len(wanted)} wheels already cached in {cache}")
    files = tuple(sorted(p for n, v in wanted.items() for p in _cached(cache, n, v, the_lock.python)))
    found = {canonicalize_name(parse_wheel_filename(p.name)[0]) for p in files}
    lost = sorted(set(wanted) - found)
    if lost:
        raise DownloadError(f"no wheel for Python {the_lock.python} on Linux x86_64 was downloaded for: {', '.join(lost)}")
    return Wheels(cache, files, sum(p.stat().st_size for p in files))


def _without(lock_text: str, names: tuple[str, ...]) -> str:
    """The lock text without the entries (pin line and its continuation lines) of `names`."""
    if not names:
        return lock_text
    out, skipping = [], False
    for line in lock_text.splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?(==| @ )", line)
        if m:
            skipping = canonicalize_name(m.group(1)) in names
        elif line and not line[0].isspace():
            skipping = False
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def _drop_stale(cache: Path, the_lock: Lock) -> None:
    """Remove cached wheels of a locked name and version whose hash the lock does not allow.

    A local rebuild keeps its file name but not its bytes; pip would refuse it, and smenv must not
    ship it. Only files of packages this lock names are looked at.
    """
    for name, version in the_lock.packages.items():
        allowed = set(the_lock.hashes.get(name, ()))
        if not allowed:
            continue
        for p in _cached(cache, name, version, the_lock.python, first_only=False):
            if _sha256(p) not in allowed:
                p.unlink()


def _sha256(path: Path) -> str:
    """The file's sha256, remembered beside it (keyed by size and mtime): TensorFlow wheels are
    hundreds of megabytes, and a rebuild should not hash them again."""
    stat = path.stat()
    key = f"{stat.st_size} {stat.st_mtime_ns}"
    memo = path.with_name(path.name + ".sha256")
    try:
        saved_key, digest = memo.read_text().rsplit(" ", 1)
        if saved_key == key:
            return digest
    except (OSError, ValueError):
        pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    memo.write_text(f"{key} {h.hexdigest()}")
    return h.hexdigest()


def _cached(cache: Path, name: str, version: str, python: str, first_only: bool = True) -> list[Path]:
    wanted = wheel_tags(python)
    out = []
    prefix = re.sub(r"[-_.]+", "_", name).lower()
    for p in cache.glob("*.whl"):
        if not p.name.lower().startswith(prefix):
            continue
        try:
            wname, wversion, _, tags = parse_wheel_filename(p.name)
        except Exception:
            continue
        if canonicalize_name(wname) == name and wversion == Version(version) and tags & wanted:
            out.append(p)
    return out[:1] if first_only else out


def _last_error(text: str) -> str:
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]
