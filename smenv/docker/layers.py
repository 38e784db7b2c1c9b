"""Image layers made by smenv itself, byte for byte the same from the same inputs.

A layer is an uncompressed tar whose sha256 is its diff ID; the image ID is the sha256 of the config
that lists those IDs (../shared/reference/image-assembly.md). So the same files give the same layer
and the same image ID on any machine, as jib, ko and apko make them: entries in path order, one fixed
mtime, uid/gid as given with no user names, no PAX records but the ones long names need.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# The time every entry carries: SOURCE_DATE_EPOCH where the build sets one (reproducible-builds.org),
# else the epoch. An int: tarfile writes a PAX record for a float mtime.
MTIME = int(os.environ.get("SOURCE_DATE_EPOCH", "0") or 0)
_CHUNK = 1 << 20
_COPY = 4 << 20  # bytes per read when a host file is copied into a layer


@dataclass(frozen=True)
class Layer:
    path: Path  # the layer tar on the host
    diff_id: str  # sha256:<hex of the tar>
    size: int  # bytes


@dataclass(frozen=True)
class Entry:
    """One file or directory of a layer made from the host (see `layer_from_entries`)."""

    name: str  # path inside the image, no leading slash
    source: Path | None = None  # a host file to copy; None for a directory
    data: bytes | None = None  # or the file's bytes
    uid: int = 0
    mode: int | None = None  # default: 0o755 for directories, 0o644 for files (as the build context has them)


class _HashingWriter:
    """A file that hashes and counts what goes through it (tarfile writes straight to it)."""

    def __init__(self, raw):
        self.raw, self.sha, self.size = raw, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def tell(self) -> int:
        return self.size


def _normal(info: tarfile.TarInfo, uid: int = 0, mode: int | None = None) -> tarfile.TarInfo:
    info.mtime = MTIME
    info.uid = info.gid = uid
    info.uname = info.gname = ""
    info.pax_headers = {}
    if mode is not None:
        info.mode = mode
    return info


def _writer(out: Path):
    raw = open(out, "wb")
    counted = _HashingWriter(raw)
    # USTAR where it fits, PAX only for long names: GNU format would add its own long-name blocks.
    return raw, counted, tarfile.open(fileobj=counted, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_CHUNK)


def normalize_archive(chunks: Iterable[bytes], out: Path, prefix: str) -> Layer:
    """Rewrite a tar stream (the engine's archive of a directory) as a reproducible layer under `prefix`.

    The engine walks directories in lexical order (Go's filepath.Walk), so the entries arrive sorted;
    this keeps their order and contents and fixes what varies: times, owners' names, PAX extras.
    Owners and modes are kept (root's files stay root's).
    """
    source = _ChunkReader(iter(chunks))
    raw, counted, tar = _writer(out)
    try:
        with tarfile.open(fileobj=source, mode="r|") as src:
            for member in src:
                member = _normal(member, member.uid, member.mode)
                member.name = f"{prefix}/{member.name}".lstrip("/")
                if member.islnk():
                    member.linkname = f"{prefix}/{member.linkname}".lstrip("/")
                tar.addfile(member, src.extractfile(member) if member.isreg() else None)
        tar.close()
    finally:
        raw.close()
    return Layer(out, "sha256:" + counted.sha.hexdigest(), counted.size)


def layer_from_entries(entries: Iterable[Entry], out: Path) -> Layer:
    """A layer of host files and made-up ones, sorted by path, with their parent directories.

    Written here rather than through tarfile's stream, which copies a file in 16 KiB reads and grows
    its buffer by concatenation (about 10 s for 1 GiB on this machine, against 1-2 s here); the bytes
    are the same tarfile writes (headers from TarInfo.tobuf, tarfile's end-of-archive and record padding).
    """
    by_name: dict[str, Entry] = {}
    for entry in entries:
        name = entry.name.strip("/")
        by_name[name] = entry
        parent = os.path.dirname(name)
        while parent and parent not in by_name:
            by_name[parent] = Entry(parent)
            parent = os.path.dirname(parent)
    sha, size = hashlib.sha256(), 0
    buffer = memoryview(bytearray(_COPY))
    with open(out, "wb") as raw:

        def put(data) -> None:
            nonlocal size
            sha.update(data)
            raw.write(data)
            size += len(data)

        for name in sorted(by_name):
            entry = by_name[name]
            info = tarfile.TarInfo(name)
            if entry.source is None and entry.data is None:
                info.type = tarfile.DIRTYPE
                put(_header(_normal(info, entry.uid, entry.mode or 0o755)))
            elif entry.data is not None:
                info.size = len(entry.data)
                put(_header(_normal(info, entry.uid, entry.mode or 0o644)) + entry.data + tar_padding(info.size))
            else:
                with open(entry.source, "rb") as f:
                    info.size = os.fstat(f.fileno()).st_size
                    put(_header(_normal(info, entry.uid, entry.mode or 0o644)))
                    left = info.size
                    while left:
                        n = f.readinto(buffer[:min(left, _COPY)])
                        if not n:
                            raise OSError(f"{entry.source} shrank while it was copied into a layer")
                        put(buffer[:n])
                        left -= n
                    put(tar_padding(info.size))
        put(TAR_END)
        put(b"\0" * (-size % tarfile.RECORDSIZE))
    return Layer(out, "sha256:" + sha.hexdigest(), size)


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def tree_entries(source: Path, target: str, uid: int = 0) -> Iterator[Entry]:
    """A host file, or every directory and file under a host directory, placed at `target` in the image.

    The same files, modes (0644/0755, readable by the image's user whatever the host's) and symlink
    rules as the build context smenv writes for `docker build` (render.context.safe_tree).
    """
    from smenv.render.context import safe_tree

    target = target.strip("/")
    if not source.is_dir():
        yield Entry(target, source=source, uid=uid)
        return
    yield Entry(target, uid=uid)
    for rel, path in safe_tree(source):
        name = f"{target}/{rel.as_posix()}"
        yield Entry(name, uid=uid) if path is None else Entry(name, source=path, uid=uid)


def tar_member(name: str, size: int) -> bytes:
    """A tar header for a regular file of `size` bytes (the bytes and `tar_padding(size)` follow it)."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, MTIME
    return info.tobuf(tarfile.PAX_FORMAT)


def tar_padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


TAR_END = b"\0" * (2 * tarfile.BLOCKSIZE)


def file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


class _BytesReader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.pos + size
        chunk, self.pos = self.data[self.pos:end], min(end, len(self.data))
        return chunk


class _ChunkReader:
    """A read-only file over an iterator of byte chunks (the SDK's archive stream), without re-copying them."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks, self.chunk, self.offset = chunks, b"", 0

    def read(self, size: int = -1) -> bytes:
        parts, wanted = [], size
        while size < 0 or wanted > 0:
            if self.offset >= len(self.chunk):
                self.chunk, self.offset = next(self.chunks, b""), 0
                if not self.chunk:
                    break
            end = len(self.chunk) if size < 0 else min(len(self.chunk), self.offset + wanted)
            parts.append(self.chunk[self.offset:end])
            wanted -= end - self.offset
            self.offset = end
        return b"".join(parts)
