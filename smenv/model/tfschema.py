"""Field numbers of the TensorFlow protobuf messages smenv reads, and nothing more.

Source: tensorflow/core/protobuf/{saved_model,meta_graph,saved_object_graph,fingerprint}.proto and
tensorflow/core/framework/{graph,node_def,function,op_def,attr_value,tensor_shape,types,versions}.proto
(cross-checked against the descriptors shipped in the tensorflow-cpu 2.21.0 wheel, as collected in
shared/reference/tensorflow-facts.md), and tf_keras/protobuf/saved_metadata.proto for keras_metadata.pb.

Each class maps field names to numbers. The text-format reader uses the same tables (by name) so
that `saved_model.pbtxt` and `saved_model.pb` go through one extraction path.
"""

from __future__ import annotations

# name -> (number, sub-message type or None for scalars)
SCHEMA: dict[str, dict[str, tuple[int, str | None]]] = {
    "SavedModel": {"saved_model_schema_version": (1, None), "meta_graphs": (2, "MetaGraphDef")},
    "MetaGraphDef": {
        "meta_info_def": (1, "MetaInfoDef"),
        "graph_def": (2, "GraphDef"),
        "saver_def": (3, None),
        "collection_def": (4, None),
        "signature_def": (5, "SignatureDefEntry"),
        "asset_file_def": (6, None),
        "object_graph_def": (7, "SavedObjectGraph"),
    },
    "MetaInfoDef": {
        "meta_graph_version": (1, None),
        "stripped_op_list": (2, "OpList"),
        "any_info": (3, None),
        "tags": (4, None),
        "tensorflow_version": (5, None),
        "tensorflow_git_version": (6, None),
        "stripped_default_attrs": (7, None),
    },
    "OpList": {"op": (1, "OpDef")},
    "OpDef": {"name": (1, None)},
    "GraphDef": {"node": (1, "NodeDef"), "library": (2, "FunctionDefLibrary"), "versions": (4, "VersionDef")},
    "VersionDef": {"producer": (1, None), "min_consumer": (2, None)},
    "FunctionDefLibrary": {"function": (1, "FunctionDef")},
    "FunctionDef": {"signature": (1, "OpDef"), "node_def": (3, "NodeDef")},
    "NodeDef": {"name": (1, None), "op": (2, None)},
    "SignatureDefEntry": {"key": (1, None), "value": (2, "SignatureDef")},
    "SignatureDef": {
        "inputs": (1, "TensorInfoEntry"),
        "outputs": (2, "TensorInfoEntry"),
        "method_name": (3, None),
    },
    "TensorInfoEntry": {"key": (1, None), "value": (2, "TensorInfo")},
    "TensorInfo": {
        "name": (1, None),
        "dtype": (2, None),
        "tensor_shape": (3, "TensorShapeProto"),
        "coo_sparse": (4, None),
        "composite_tensor": (5, None),
    },
    "TensorShapeProto": {"dim": (2, "Dim"), "unknown_rank": (3, None)},
    "Dim": {"size": (1, None), "name": (2, None)},
    "SavedObjectGraph": {"nodes": (1, "SavedObject")},
    "SavedObject": {"user_object": (4, "SavedUserObject")},
    "SavedUserObject": {"identifier": (1, None), "metadata": (3, None)},
    # tf_keras/protobuf/saved_metadata.proto
    "SavedMetadata": {"nodes": (1, "KerasSavedObject")},
    "KerasSavedObject": {"node_id": (2, None), "node_path": (3, None), "identifier": (4, None), "metadata": (5, None)},
}


def numbers(message: str) -> dict[str, int]:
    """{field name: number} for one message type."""
    return {name: num for name, (num, _) in SCHEMA[message].items()}


def by_number(message: str) -> dict[int, str]:
    """{number: field name}, the form `Message.get` takes."""
    return {num: name for name, (num, _) in SCHEMA[message].items()}


# tensorflow/core/framework/types.proto: DataType enum. *_REF types are the value + 100.
DTYPES: dict[int, str] = {
    0: "invalid", 1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8",
    7: "string", 8: "complex64", 9: "int64", 10: "bool", 11: "qint8", 12: "quint8", 13: "qint32",
    14: "bfloat16", 15: "qint16", 16: "quint16", 17: "uint16", 18: "complex128", 19: "float16",
    20: "resource", 21: "variant", 22: "uint32", 23: "uint64",
}
# The enum's own names, as text-format files spell them (DT_FLOAT, ...).
DTYPE_ENUM_NAMES: dict[str, int] = {
    "DT_INVALID": 0, "DT_FLOAT": 1, "DT_DOUBLE": 2, "DT_INT32": 3, "DT_UINT8": 4, "DT_INT16": 5,
    "DT_INT8": 6, "DT_STRING": 7, "DT_COMPLEX64": 8, "DT_INT64": 9, "DT_BOOL": 10, "DT_QINT8": 11,
    "DT_QUINT8": 12, "DT_QINT32": 13, "DT_BFLOAT16": 14, "DT_QINT16": 15, "DT_QUINT16": 16,
    "DT_UINT16": 17, "DT_COMPLEX128": 18, "DT_HALF": 19, "DT_RESOURCE": 20, "DT_VARIANT": 21,
    "DT_UINT32": 22, "DT_UINT64": 23,
}


def dtype_name(value: int) -> str:
    if value > 100:
        return DTYPES.get(value - 100, f"dtype_{value}") + "_ref"
    return DTYPES.get(value, f"dtype_{value}")
