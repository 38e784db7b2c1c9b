"""Protobuf text format (`saved_model.pbtxt`) behind the same interface as `protowire.Message`.

Text format names its fields, so no descriptor is needed to parse it; `tfschema.SCHEMA` maps the
names back to numbers so the SavedModel extraction code reads both formats the same way.
Text files are parsed in memory (they are rare and small next to binary SavedModels); a file
over MAX_TEXT_BYTES is refused rather than risking the host's memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from smenv.model.protowire import LEN, VARINT, WireError
from smenv.model.tfschema import DTYPE_ENUM_NAMES, SCHEMA

MAX_TEXT_BYTES = 256 << 20

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[fF]?|inf(?:inity)?|nan))
  | (?P<ident>\[[^\]]*\]|[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[{}<>\[\]:,;])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\", "'": b"'", '"': b'"', "a": b"\a", "b": b"\b", "f": b"\f", "v": b"\v", "?": b"?"}


class _Scalar:
    """A string value; offers the byte/text accessors a length-delimited wire value has."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes):
        self._data = data

    def bytes(self, limit: int = 0) -> bytes:
        return self._data

    def text(self) -> str:
        return self._data.decode("utf-8", errors="replace")

    def fields(self) -> Iterator:
        raise WireError("a string where a message was expected", 0)


class TextMessage:
    """A parsed text-format message of a known type from `tfschema.SCHEMA`."""

    def __init__(self, type_name: str, entries: list[tuple[str, object]]):
        self._type = type_name
        self._entries = entries

    def fields(self) -> Iterator[tuple[int, int, object]]:
        table = SCHEMA.get(self._type, {})
        for name, value in self._entries:
            spec = table.get(name)
            if spec is None:
                continue  # a field smenv does not read
            number, subtype = spec
            if isinstance(value, list):  # a nested message
                yield number, LEN, TextMessage(subtype or "", value)
            elif isinstance(value, bytes):
                yield number, LEN, _Scalar(value)
            else:
                yield number, VARINT, value

    # Same conveniences as protowire.Message.
    def messages(self, number: int):
        for n, w, v in self.fields():
            if n == number and w == LEN:
                yield v

    def first(self, number: int):
        found = None
        for n, _, v in self.fields():
            if n == number:
                found = v
        return found

    def get(self, wanted: dict[int, str]) -> dict[str, object]:
        return {wanted[n]: v for n, _, v in self.fields() if n in wanted}


def parse_file(path: Path, root_type: str) -> TextMessage:
    size = path.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise WireError(f"text-format file of {size} bytes is over the {MAX_TEXT_BYTES} byte limit", 0)
    return TextMessage(root_type, parse(path.read_text(encoding="utf-8", errors="strict")))


def parse(text: str) -> list[tuple[str, object]]:
    tokens = _tokenize(text)
    entries, pos = _message(tokens, 0, closer=None)
    return entries


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise WireError(f"unexpected character {text[pos]!r} in text format", pos)
        kind = m.lastgroup
        if kind != "ws":
            out.append((kind, m.group(), pos))
        pos = m.end()
    return out


def _message(tokens, i: int, closer: str | None) -> tuple[list[tuple[str, object]], int]:
    entries: list[tuple[str, object]] = []
    while i < len(tokens):
        kind, tok, off = tokens[i]
        if closer is not None and tok == closer:
            return entries, i + 1
        if kind != "ident":
            raise WireError(f"expected a field name, found {tok!r}", off)
        name, i = tok, i + 1
        if i < len(tokens) and tokens[i][1] == ":":
            i += 1
        if i >= len(tokens):
            raise WireError(f"field {name!r} has no value", off)
        if tokens[i][1] == "[":  # a list of values or messages
            i += 1
            while i < len(tokens) and tokens[i][1] != "]":
                value, i = _value(tokens, i)
                entries.append((name, value))
                if i < len(tokens) and tokens[i][1] == ",":
                    i += 1
            i += 1
        else:
            value, i = _value(tokens, i)
            entries.append((name, value))
        if i < len(tokens) and tokens[i][1] in ",;":
            i += 1
    if closer is not None:
        raise WireError(f"missing {closer!r} at end of text", len(tokens))
    return entries, i


def _value(tokens, i: int):
    kind, tok, off = tokens[i]
    if tok in ("{", "<"):
        return _message(tokens, i + 1, closer="}" if tok == "{" else ">")
    if kind == "string":  # adjacent strings concatenate
        data = b""
        while i < len(tokens) and tokens[i][0] == "string":
            data += _unescape(tokens[i][1][1:-1], tokens[i][2])
            i += 1
        return data, i
    if kind == "number":
        try:
            return int(tok, 0), i + 1
        except ValueError:
            return 0, i + 1  # floats are never read by smenv
    if kind == "ident":
        if tok in ("true", "True", "t"):
            return 1, i + 1
        if tok in ("false", "False", "f"):
            return 0, i + 1
        return DTYPE_ENUM_NAMES.get(tok, 0), i + 1  # the only enum smenv reads is DataType
    raise WireError(f"unexpected {tok!r}", off)


def _unescape(body: str, offset: int) -> bytes:
    out = bytearray()
    raw = body.encode("utf-8")
    i = 0
    while i < len(raw):
        c = raw[i]
        if c != 0x5C:  # backslash
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(raw):
            raise WireError("dangling backslash in string", offset)
        e = chr(raw[i + 1])
        if e in _ESCAPES:
            out += _ESCAPES[e]
            i += 2
        elif e in "01234567":
            j = i + 1
            while j < len(raw) and j < i + 4 and chr(raw[j]) in "01234567":
                j += 1
            out.append(int(raw[i + 1 : j], 8) & 0xFF)
            i = j
        elif e in "xX":
            j = i + 2
            while j < len(raw) and j < i + 4 and chr(raw[j]) in "0123456789abcdefABCDEF":
                j += 1
            if j == i + 2:
                raise WireError("\\x with no hex digits", offset)
            out.append(int(raw[i + 2 : j], 16))
            i = j
        else:
            raise WireError(f"unknown escape \\{e}", offset)
    return bytes(out)
