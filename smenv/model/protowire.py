"""A small, lazy reader for the protobuf binary wire format.

Why not the protobuf runtime: `ParseFromString` needs the whole file in memory and keeps every
unknown field, so a 500 MB `saved_model.pb` costs gigabytes. This reader walks the file with
`os.pread`, keeps at most one bounded window per nesting level, and skips the fields it is not
asked about (constant tensors, variable values) without reading them. Callers name fields by
number; TensorFlow's numbers live in `smenv.model.tfschema`.

Only what TensorFlow's protos use is supported: varint (0), fixed64 (1), length-delimited (2)
and fixed32 (5). Groups (3, 4) never occur in them and are reported as corruption.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Union

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5

# A message is read into memory whole when it is at most this big; larger ones are streamed
# through a window of this size, so memory stays flat however big the file is.
WINDOW = 1 << 20
# The longest header (tag varint + length varint) that must be contiguous in a window.
_HEADER_MAX = 20


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""

    def __init__(self, message: str, offset: int):
        super().__init__(f"{message} at byte {offset}")
        self.offset = offset


class _File:
    """A file opened once and read by position; shared by every Message cut from it."""

    __slots__ = ("fd", "size")

    def __init__(self, path: str | os.PathLike):
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size

    def read(self, offset: int, n: int) -> bytes:
        data = os.pread(self.fd, n, offset)
        if len(data) != n:
            raise WireError("file ended early", offset + len(data))
        return data

    def close(self) -> None:
        os.close(self.fd)


Value = Union[int, "Message"]


class Message:
    """A length-delimited span of a file or buffer, parsed only when its fields are iterated.

    A length-delimited field's value is itself a `Message`; call `.bytes()` or `.text()` when the
    field is a string, or iterate `.fields()` when it is a sub-message.
    """

    __slots__ = ("_src", "_start", "_end", "_buf", "_buf_start")

    def __init__(self, src: _File | None, start: int, end: int, buf: memoryview | None = None, buf_start: int = 0):
        self._src = src
        self._start = start
        self._end = end
        # `_buf` holds the bytes [buf_start, buf_start + len(buf)) when they are already in memory.
        self._buf = buf
        self._buf_start = buf_start

    @classmethod
    def from_bytes(cls, data: bytes) -> "Message":
        return cls(None, 0, len(data), memoryview(data), 0)

    @property
    def size(self) -> int:
        return self._end - self._start

    @property
    def offset(self) -> int:
        return self._start

    def _window(self, pos: int) -> tuple[memoryview, int]:
        """Bytes from `pos` on: up to the end of the message, at most WINDOW of them."""
        buf, bstart = self._buf, self._buf_start
        if buf is not None and bstart <= pos and (pos + _HEADER_MAX <= bstart + len(buf) or bstart + len(buf) >= self._end):
            return buf, bstart
        if self._src is None:
            raise WireError("message runs past its buffer", pos)
        n = min(WINDOW, self._end - pos)
        return memoryview(self._src.read(pos, n)), pos

    def bytes(self, limit: int = 64 << 20) -> bytes:
        """The raw bytes of this span. `limit` guards against a corrupt length asking for gigabytes."""
        if self.size > limit:
            raise WireError(f"field of {self.size} bytes is larger than the {limit}-byte limit", self._start)
        buf, bstart = self._buf, self._buf_start
        if buf is not None and bstart <= self._start and self._end <= bstart + len(buf):
            return bytes(buf[self._start - bstart : self._end - bstart])
        if self._src is None:
            raise WireError("message runs past its buffer", self._start)
        return self._src.read(self._start, self.size)

    def text(self) -> str:
        return self.bytes(limit=16 << 20).decode("utf-8", errors="replace")

    def fields(self) -> Iterator[tuple[int, int, Value]]:
        """Yield (field number, wire type, value) in file order.

        Varint and fixed values are ints; a length-delimited value is a lazy `Message`.
        """
        pos, end = self._start, self._end
        buf, bstart = self._window(pos) if pos < end else (memoryview(b""), pos)
        while pos < end:
            rel = pos - bstart
            if rel < 0 or rel + _HEADER_MAX > len(buf) and bstart + len(buf) < end:
                buf, bstart = self._window(pos)
                rel = 0
            blen = len(buf)
            key, rel = _varint(buf, rel, blen, bstart)
            number, wtype = key >> 3, key & 7
            if number == 0:
                raise WireError("field number 0", bstart + rel)
            if wtype == VARINT:
                value, rel = _varint(buf, rel, blen, bstart)
                pos = bstart + rel
            elif wtype == LEN:
                length, rel = _varint(buf, rel, blen, bstart)
                start = bstart + rel
                pos = start + length
                if pos > end:
                    raise WireError(f"field {number} claims {length} bytes but only {end - start} remain", start)
                if pos <= bstart + blen:
                    value = Message(self._src, start, pos, buf, bstart)
                else:
                    value = Message(self._src, start, pos)
            elif wtype == FIXED64 or wtype == FIXED32:
                width = 8 if wtype == FIXED64 else 4
                if rel + width > blen:
                    raise WireError("fixed-width field runs past the end", bstart + rel)
                value = int.from_bytes(buf[rel : rel + width], "little")
                pos = bstart + rel + width
            else:
                raise WireError(f"unsupported wire type {wtype} (field {number})", bstart + rel)
            if pos > end:
                raise WireError("field runs past the end of its message", end)
            yield number, wtype, value

    # Conveniences for the common access patterns -------------------------------------------

    def messages(self, number: int) -> Iterator["Message"]:
        """Every length-delimited value of a field, in order (repeated or not)."""
        for n, w, v in self.fields():
            if n == number and w == LEN:
                yield v  # type: ignore[misc]

    def first(self, number: int) -> Value | None:
        """The last occurrence of a singular field (protobuf's "last one wins"), or None."""
        found = None
        for n, _, v in self.fields():
            if n == number:
                found = v
        return found

    def get(self, wanted: dict[int, str]) -> dict[str, Value]:
        """One pass over the message, collecting singular fields by number into a dict by name."""
        out: dict[str, Value] = {}
        for n, _, v in self.fields():
            name = wanted.get(n)
            if name is not None:
                out[name] = v
        return out


def _varint(buf: memoryview, rel: int, blen: int, base: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if rel >= blen:
            raise WireError("varint runs past the end", base + rel)
        b = buf[rel]
        rel += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, rel
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes", base + rel)


def signed64(value: int) -> int:
    """Interpret a varint as int64 (two's complement), as protobuf does for int64 fields."""
    return value - (1 << 64) if value >= 1 << 63 else value


class ProtoFile:
    """Context manager giving the root `Message` of a binary protobuf file."""

    def __init__(self, path: str | os.PathLike):
        self._file = _File(path)

    def __enter__(self) -> Message:
        return Message(self._file, 0, self._file.size)

    def __exit__(self, *exc: object) -> None:
        self._file.close()
