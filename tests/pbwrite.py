"""A minimal protobuf wire-format *writer* for tests: builds SavedModel bytes without TensorFlow.

Field numbers come from smenv.model.tfschema, so a test written with this checks the reader against
the same table (the corpus tests check that table against real TensorFlow output).
"""

from __future__ import annotations

from smenv.model.tfschema import numbers


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def field_bytes(number: int, data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode()
    return varint(number << 3 | 2) + varint(len(data)) + data


def node(op: str, name: str = "n") -> bytes:
    f = numbers("NodeDef")
    return field_bytes(f["name"], name) + field_bytes(f["op"], op)


def function(name: str, ops: list[str]) -> bytes:
    f = numbers("FunctionDef")
    return field_bytes(f["signature"], field_bytes(1, name)) + b"".join(field_bytes(f["node_def"], node(o)) for o in ops)


def tensor_info(name: str, dtype: int, dims: list[int] | None) -> bytes:
    f = numbers("TensorInfo")
    shape = b""
    if dims is None:
        shape = field_varint(3, 1)
    else:
        shape = b"".join(field_bytes(2, field_varint(1, d)) for d in dims)
    return field_bytes(f["name"], name) + field_varint(f["dtype"], dtype) + field_bytes(f["tensor_shape"], shape)


def signature(inputs: dict[str, bytes], outputs: dict[str, bytes], method: str = "tensorflow/serving/predict") -> bytes:
    body = b"".join(field_bytes(1, field_bytes(1, k) + field_bytes(2, v)) for k, v in inputs.items())
    body += b"".join(field_bytes(2, field_bytes(1, k) + field_bytes(2, v)) for k, v in outputs.items())
    return body + field_bytes(3, method)


def meta_graph(
    tags: list[str],
    tf_version: str = "2.15.0",
    git_version: str = "v2.15.0-0-gdeadbeef",
    nodes: list[bytes] = (),
    functions: list[bytes] = (),
    signatures: dict[str, bytes] | None = None,
    extra_graph: bytes = b"",
) -> bytes:
    mi = numbers("MetaInfoDef")
    info = b"".join(field_bytes(mi["tags"], t) for t in tags)
    info += field_bytes(mi["tensorflow_version"], tf_version) + field_bytes(mi["tensorflow_git_version"], git_version)
    gd = numbers("GraphDef")
    graph = b"".join(field_bytes(gd["node"], n) for n in nodes)
    graph += field_bytes(gd["library"], b"".join(field_bytes(1, fn) for fn in functions))
    graph += extra_graph
    mg = numbers("MetaGraphDef")
    out = field_bytes(mg["meta_info_def"], info) + field_bytes(mg["graph_def"], graph)
    for key, sig in (signatures or {}).items():
        out += field_bytes(mg["signature_def"], field_bytes(1, key) + field_bytes(2, sig))
    return out


def saved_model(*graphs: bytes) -> bytes:
    return field_varint(1, 1) + b"".join(field_bytes(2, g) for g in graphs)
