"""A content digest of a model that is the same for every copy of it.

A single file's digest is the plain sha256 of its bytes (what `sha256sum` prints). A directory's is
sha256 over (relative path, size, sha256 of content) of every regular file, in sorted path order:
names and contents count, timestamps and permissions do not. Files are streamed in 1 MiB blocks; a
large file's hash is kept while the file is unchanged (smenv.stat_cache), so a rebuild after a small
change reads only what changed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from smenv.stat_cache import StatCache, stamp

BLOCK = 1 << 20


def model_digest(root: Path) -> tuple[str, int]:
    """(\"sha256:<hex>\", total size in bytes) of a file or of every file under a directory."""
    cache = StatCache("sha256")
    try:
        if root.is_file():
            digest, size = _file_sha256(root, cache)
            return "sha256:" + digest, size
        files = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file() and not p.is_symlink())
        outer = hashlib.sha256()
        total = 0
        for rel, p in files:
            digest, size = _file_sha256(p, cache)
            total += size
            outer.update(f"{rel}\0{size}\0{digest}\n".encode())
        return "sha256:" + outer.hexdigest(), total
    finally:
        cache.save()


def _file_sha256(path: Path, cache: StatCache) -> tuple[str, int]:
    at = stamp(path)
    known = cache.get(at)
    if known is not None:
        digest, _, size = known.partition(" ")
        return digest, int(size)
    digest, size = _read_sha256(path)
    cache.put(at, f"{digest} {size}")
    return digest, size


def _read_sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size
