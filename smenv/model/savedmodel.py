"""Read a SavedModel directory: meta graphs, tags, producer versions, signatures, ops, Keras metadata.

Reads `saved_model.pb` (or `.pbtxt`) and `keras_metadata.pb` only; `variables/` is never opened.
File names and the .pb-then-.pbtxt order follow tensorflow/cc/saved_model/constants.h and
tensorflow/python/saved_model/loader_impl.py.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from smenv.errors import InvalidModel
from smenv.model import pbtext
from smenv.model.facts import MetaGraph, Signature, TensorSpec
from smenv.model.protowire import LEN, ProtoFile, WireError, signed64
from smenv.model.tfschema import by_number, dtype_name, numbers

PB, PBTXT, CPB = "saved_model.pb", "saved_model.pbtxt", "saved_model.cpb"
KERAS_METADATA = "keras_metadata.pb"

_SM = numbers("SavedModel")
_MG = by_number("MetaGraphDef")
_MI = by_number("MetaInfoDef")
_GD = numbers("GraphDef")
_FN = numbers("FunctionDef")
_NODE_OP = numbers("NodeDef")["op"]
_SIG = by_number("SignatureDef")
_TI = by_number("TensorInfo")
_DIM = numbers("Dim")
_USER = numbers("SavedUserObject")


def savedmodel_file(directory: Path) -> Path | None:
    for name in (PB, PBTXT, CPB):
        if (directory / name).is_file():
            return directory / name
    return None


@dataclass
class GraphContents:
    """One meta graph, as read."""

    tags: tuple[str, ...]
    tensorflow_version: str | None
    tensorflow_git_version: str | None
    graph_producer: int | None
    signatures: list[Signature]
    ops: Counter
    # (identifier, metadata JSON) of Keras user objects in the object graph (TF 2.0-2.4 layout).
    keras_objects: list[tuple[str, dict]] = field(default_factory=list)

    def summary(self) -> MetaGraph:
        return MetaGraph(
            tags=self.tags,
            tensorflow_version=self.tensorflow_version,
            tensorflow_git_version=self.tensorflow_git_version,
            signature_names=tuple(s.name for s in self.signatures),
            op_count=sum(self.ops.values()),
            graph_producer=self.graph_producer,
        )


def read_meta_graphs(directory: Path) -> list[GraphContents]:
    path = savedmodel_file(directory)
    if path is None:
        raise InvalidModel("no saved_model.pb or saved_model.pbtxt", directory)
    if path.name == CPB:
        raise InvalidModel(
            "chunked SavedModel (saved_model.cpb, written for protos over 2 GiB) is not supported yet; "
            "re-save without chunking if you can",
            path,
        )
    try:
        if path.name == PBTXT:
            root = pbtext.parse_file(path, "SavedModel")
            graphs = [_read_meta_graph(mg) for mg in root.messages(_SM["meta_graphs"])]
        else:
            with ProtoFile(path) as root:
                graphs = [_read_meta_graph(mg) for mg in root.messages(_SM["meta_graphs"])]
    except (WireError, UnicodeDecodeError) as exc:
        raise InvalidModel(f"not a valid SavedModel protobuf ({exc}); the file may be truncated or corrupt", path) from None
    if not graphs:
        raise InvalidModel("SavedModel holds no meta graph; the file may be truncated or not a SavedModel", path)
    return graphs


def read_keras_metadata(directory: Path) -> list[tuple[str, dict]] | None:
    """(identifier, metadata JSON) for every node of keras_metadata.pb, or None when absent."""
    path = directory / KERAS_METADATA
    if not path.is_file():
        return None
    fields = numbers("KerasSavedObject")
    out: list[tuple[str, dict]] = []
    try:
        with ProtoFile(path) as root:
            for node in root.messages(numbers("SavedMetadata")["nodes"]):
                got = node.get({fields["identifier"]: "identifier", fields["metadata"]: "metadata"})
                out.append((_text(got.get("identifier")) or "", _json(got.get("metadata"), path)))
    except WireError as exc:
        raise InvalidModel(f"not a valid keras_metadata.pb ({exc})", path) from None
    return out


def _read_meta_graph(mg) -> GraphContents:
    parts = mg.get(_MG)
    info = parts.get("meta_info_def")
    tags: list[str] = []
    tf_version = git_version = None
    if info is not None and hasattr(info, "fields"):
        for number, wtype, value in info.fields():
            name = _MI.get(number)
            if name == "tags" and wtype == LEN:
                tags.append(value.text())
            elif name == "tensorflow_version" and wtype == LEN:
                tf_version = value.text() or None
            elif name == "tensorflow_git_version" and wtype == LEN:
                git_version = normalise_git_version(value.text())
    ops, producer = Counter(), None
    graph = _message(parts.get("graph_def"))
    if graph is not None:
        ops, producer = _count_ops(graph)
    signatures: list[Signature] = []
    for entry in mg.messages(numbers("MetaGraphDef")["signature_def"]):
        key, sig = _text(entry.first(1)), _message(entry.first(2))
        if key is not None:
            signatures.append(_read_signature(key, sig))
    objects = []
    object_graph = _message(parts.get("object_graph_def"))
    if object_graph is not None:
        objects = _keras_user_objects(object_graph)
    return GraphContents(
        tags=tuple(tags),
        tensorflow_version=tf_version,
        tensorflow_git_version=git_version,
        graph_producer=producer,
        signatures=sorted(signatures, key=lambda s: s.name),
        ops=ops,
        keras_objects=objects,
    )


def _count_ops(graph) -> tuple[Counter, int | None]:
    """Count every NodeDef.op in the graph and in every library function, leaving out calls.

    A node whose op names a library function is a function call, not an op (function.proto);
    functions reached only through If/While attrs are still counted because the whole library is scanned.
    """
    raw: Counter = Counter()
    function_names: set[str] = set()
    producer = None
    for number, wtype, value in graph.fields():
        if number == _GD["node"] and wtype == LEN:
            _count_node(value, raw)
        elif number == _GD["library"] and wtype == LEN:
            for fn in value.messages(1):  # FunctionDefLibrary.function
                for fnum, fw, fval in fn.fields():
                    if fnum == _FN["signature"] and fw == LEN:
                        name = _text(fval.first(1))
                        if name is not None:
                            function_names.add(name)
                    elif fnum == _FN["node_def"] and fw == LEN:
                        _count_node(fval, raw)
        elif number == _GD["versions"] and wtype == LEN:
            p = value.first(1)
            producer = signed64(p) if isinstance(p, int) else None
    ops = Counter({op: n for op, n in raw.items() if op not in function_names})
    return ops, producer


def _count_node(node, counter: Counter) -> None:
    for number, wtype, value in node.fields():
        if number == _NODE_OP and wtype == LEN:
            counter[value.text()] += 1
            return  # op follows name in TF's writers; nothing after it is needed


def _read_signature(name: str, sig) -> Signature:
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    method = None
    if sig is not None:
        for number, wtype, value in sig.fields():
            field_name = _SIG.get(number)
            if field_name in ("inputs", "outputs") and wtype == LEN:
                key, info = _text(value.first(1)), _message(value.first(2))
                spec = _read_tensor_info(key or "", info)
                (inputs if field_name == "inputs" else outputs).append(spec)
            elif field_name == "method_name" and wtype == LEN:
                method = value.text()
    return Signature(
        name=name,
        inputs=tuple(sorted(inputs, key=lambda t: t.name)),
        outputs=tuple(sorted(outputs, key=lambda t: t.name)),
        method_name=method,
    )


def _read_tensor_info(key: str, info) -> TensorSpec:
    if info is None:
        return TensorSpec(name=key, dtype=None, shape=None)
    got = info.get(_TI)
    kind = "sparse" if "coo_sparse" in got else "composite" if "composite_tensor" in got else "dense"
    dtype = got.get("dtype")
    shape: tuple[int | None, ...] | None = None
    shape_msg = _message(got.get("tensor_shape"))
    if shape_msg is not None:
        dims: list[int | None] = []
        unknown_rank = False
        for number, wtype, value in shape_msg.fields():
            if number == 3 and isinstance(value, int) and value:
                unknown_rank = True
            elif number == 2 and wtype == LEN:
                size = value.first(_DIM["size"])
                size = signed64(size) if isinstance(size, int) else 0
                dims.append(None if size < 0 else size)
        shape = None if unknown_rank else tuple(dims)
    tensor = got.get("name")
    return TensorSpec(
        name=key,
        dtype=dtype_name(dtype) if isinstance(dtype, int) else None,
        shape=shape,
        tensor_name=tensor.text() if tensor is not None and hasattr(tensor, "text") else None,
        kind=kind,
    )


def _keras_user_objects(object_graph) -> list[tuple[str, dict]]:
    """Keras objects recorded in the object graph (TF 2.0-2.4 wrote Keras metadata here)."""
    out = []
    for node in object_graph.messages(1):  # SavedObjectGraph.nodes
        user = node.first(numbers("SavedObject")["user_object"])
        if user is None or not hasattr(user, "fields"):
            continue
        got = user.get({_USER["identifier"]: "identifier", _USER["metadata"]: "metadata"})
        ident = _text(got.get("identifier")) or ""
        if ident.startswith("_tf_keras"):
            out.append((ident, _json(got.get("metadata"), None)))
    return out


def normalise_git_version(text: str) -> str | None:
    """`b'v1.12.0-rc0-2760-g5e1ab96'` (a Python bytes repr some TF 1.x builds stored) -> `v1.12.0-rc0-...`."""
    text = text.strip()
    if len(text) >= 3 and text[0] == "b" and text[1] in "'\"" and text[-1] == text[1]:
        text = text[2:-1]
    return text or None


# A field's value has the wire type the file gives it, not the one the schema expects: a damaged file
# can hold a varint where a message or a string belongs (found by tools/fuzz.py). Read such a field as absent.


def _text(value) -> str | None:
    return value.text() if value is not None and hasattr(value, "text") else None


def _message(value):
    return value if hasattr(value, "fields") else None


def _json(value, path: Path | None) -> dict:
    text = _text(value)
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidModel("Keras metadata is not valid JSON", path) from None
    except RecursionError:
        raise InvalidModel("Keras metadata is nested too deeply to be a model config", path) from None
    return data if isinstance(data, dict) else {}
