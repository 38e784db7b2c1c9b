"""The wire-format reader: round-trips against an independent writer, and never crashes on garbage."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pbwrite
from smenv.model import protowire
from smenv.model.protowire import LEN, VARINT, Message, ProtoFile, WireError

# A message is a list of (number, value): int -> varint, bytes -> bytes, list -> sub-message.
field_numbers = st.integers(min_value=1, max_value=(1 << 29) - 1)
leaf = st.one_of(st.integers(min_value=0, max_value=(1 << 64) - 1), st.binary(max_size=64))
messages = st.recursive(
    st.lists(st.tuples(field_numbers, leaf), max_size=6),
    lambda inner: st.lists(st.tuples(field_numbers, st.one_of(leaf, inner)), max_size=6),
    max_leaves=40,
)


def encode(msg) -> bytes:
    out = b""
    for number, value in msg:
        if isinstance(value, int):
            out += pbwrite.field_varint(number, value)
        elif isinstance(value, bytes):
            out += pbwrite.field_bytes(number, value)
        else:
            out += pbwrite.field_bytes(number, encode(value))
    return out


def decode(m: Message, shape) -> list:
    out = []
    for (number, wtype, value), (_, expected) in zip(m.fields(), shape):
        if isinstance(expected, list):
            assert wtype == LEN
            out.append((number, decode(value, expected)))
        elif isinstance(expected, bytes):
            assert wtype == LEN
            out.append((number, value.bytes()))
        else:
            assert wtype == VARINT
            out.append((number, value))
    return out


@settings(max_examples=300, deadline=None)
@given(messages)
def test_round_trip_in_memory(msg):
    assert decode(Message.from_bytes(encode(msg)), msg) == msg


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(msg=messages)
def test_round_trip_from_a_file_with_a_tiny_window(msg, tmp_path, monkeypatch):
    # A 32-byte window forces every refill and boundary path of the streaming reader.
    monkeypatch.setattr(protowire, "WINDOW", 32)
    p = tmp_path / "m.pb"
    p.write_bytes(encode(msg))
    with ProtoFile(p) as root:
        assert decode(root, msg) == msg


def walk(m: Message, depth: int = 0) -> int:
    n = 0
    for _, wtype, value in m.fields():
        n += 1
        if wtype == LEN and depth < 8:
            try:
                n += walk(value, depth + 1)
            except WireError:
                pass  # a string that is not a message: expected for arbitrary bytes
    return n


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_ever_raise_wire_error(data):
    try:
        walk(Message.from_bytes(data))
    except WireError:
        pass


@settings(max_examples=200, deadline=None)
@given(messages, st.data())
def test_truncation_is_detected_or_harmless(msg, data):
    raw = encode(msg)
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    try:
        walk(Message.from_bytes(raw[:cut]))
    except WireError:
        pass


def test_length_past_the_end_is_reported_with_its_offset():
    raw = pbwrite.varint(2 << 3 | 2) + pbwrite.varint(1000) + b"abc"
    try:
        list(Message.from_bytes(raw).fields())
    except WireError as exc:
        assert "claims 1000 bytes" in str(exc) and exc.offset == 3
    else:
        raise AssertionError("expected WireError")


def test_groups_are_rejected():
    raw = pbwrite.varint(1 << 3 | 3)
    try:
        list(Message.from_bytes(raw).fields())
    except WireError as exc:
        assert "wire type 3" in str(exc)
    else:
        raise AssertionError("expected WireError")


def test_signed_int64():
    assert protowire.signed64((1 << 64) - 1) == -1
    assert protowire.signed64(5) == 5
