"""JSON <-> numpy for TensorFlow Serving's REST API and the Open Inference Protocol v2.

Every check a bad request needs is here, and each failure is a BadRequest naming what is wrong
(the input, the position, the expected dtype or shape); the HTTP layer answers it with 400 and
{"error": message}. Nothing here trusts the JSON: nesting depth, element counts and types are checked
before numpy sees a value.

Python 3.5 syntax (see the package docstring).
"""

import base64
import binascii
import struct

import numpy as np

MAX_RANK = 32  # deeper nesting is refused before it is walked
MAX_ELEMENTS = 1 << 26  # elements in one tensor
BYTES_SUFFIX = "_bytes"  # TF Serving: outputs so named are answered as {"b64": ...}

# TensorFlow dtype name -> (numpy dtype name, kind, Open Inference Protocol datatype)
DTYPES = {
    "bool": ("bool", "bool", "BOOL"),
    "uint8": ("uint8", "int", "UINT8"),
    "uint16": ("uint16", "int", "UINT16"),
    "uint32": ("uint32", "int", "UINT32"),
    "uint64": ("uint64", "int", "UINT64"),
    "int8": ("int8", "int", "INT8"),
    "int16": ("int16", "int", "INT16"),
    "int32": ("int32", "int", "INT32"),
    "int64": ("int64", "int", "INT64"),
    "qint8": ("int8", "int", "INT8"),
    "quint8": ("uint8", "int", "UINT8"),
    "qint16": ("int16", "int", "INT16"),
    "quint16": ("uint16", "int", "UINT16"),
    "qint32": ("int32", "int", "INT32"),
    "float16": ("float16", "float", "FP16"),
    "half": ("float16", "float", "FP16"),
    "bfloat16": ("float32", "float", "FP32"),  # no numpy dtype: sent and answered as float32
    "float32": ("float32", "float", "FP32"),
    "float64": ("float64", "float", "FP64"),
    "double": ("float64", "float", "FP64"),
    "string": ("object", "string", "BYTES"),
}
OIP_NUMPY = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
    "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "object",
}
TF_DTYPE_ENUM = {  # for TF Serving's metadata (DataType names in types.proto)
    "bool": "DT_BOOL", "uint8": "DT_UINT8", "uint16": "DT_UINT16", "uint32": "DT_UINT32", "uint64": "DT_UINT64",
    "int8": "DT_INT8", "int16": "DT_INT16", "int32": "DT_INT32", "int64": "DT_INT64", "float16": "DT_HALF",
    "half": "DT_HALF", "bfloat16": "DT_BFLOAT16", "float32": "DT_FLOAT", "float64": "DT_DOUBLE",
    "double": "DT_DOUBLE", "string": "DT_STRING", "qint8": "DT_QINT8", "quint8": "DT_QUINT8",
    "qint16": "DT_QINT16", "quint16": "DT_QUINT16", "qint32": "DT_QINT32",
}


class BadRequest(Exception):
    """A request the server refuses; str() is the message for {"error": ...}."""

    def __init__(self, message, status=400):
        Exception.__init__(self, message)
        self.status = status


def numpy_dtype(tf_dtype):
    return DTYPES.get(tf_dtype, (tf_dtype, "float", tf_dtype.upper()))[0]


def kind_of(tf_dtype):
    return DTYPES[tf_dtype][1] if tf_dtype in DTYPES else None


def oip_datatype(tf_dtype):
    return DTYPES[tf_dtype][2] if tf_dtype in DTYPES else tf_dtype.upper()


def shape_text(shape):
    return "unknown rank" if shape is None else "[%s]" % ", ".join("-1" if d is None else str(d) for d in shape)


def optional_object(container, key, where):
    """container[key] when it is an object, {} when it is absent or null; anything else is refused."""
    value = container.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("%s must be an object" % where)
    return value


def is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


# -- walking JSON values ---------------------------------------------------------------------------


def walk(value, where):
    """(shape, flat list of leaves) of a nested JSON list; refuses ragged lists and deep nesting.

    A leaf is anything that is not a list ({"b64": ...} included). Iterative: a hostile depth cannot
    exhaust the stack.
    """
    shape = []
    level = [value]
    while level and isinstance(level[0], list):
        if len(shape) >= MAX_RANK:
            raise BadRequest("%s: nested deeper than %d levels" % (where, MAX_RANK))
        length = len(level[0])
        nxt = []
        for item in level:
            if not isinstance(item, list):
                raise BadRequest("%s: ragged nesting (a list and a scalar at the same depth %d)" % (where, len(shape)))
            if len(item) != length:
                raise BadRequest("%s: ragged lists at depth %d (lengths %d and %d)" % (where, len(shape), length, len(item)))
            nxt.extend(item)
            if len(nxt) > MAX_ELEMENTS:
                raise BadRequest("%s: more than %d elements" % (where, MAX_ELEMENTS), 413)
        shape.append(length)
        level = nxt
    for item in level:
        if isinstance(item, list):
            raise BadRequest("%s: ragged nesting (a list and a scalar at the same depth %d)" % (where, len(shape)))
    return shape, level


def _leaf_error(where, leaf, expected):
    text = repr(leaf)
    if len(text) > 60:
        text = text[:57] + "..."
    return BadRequest("%s: %s is not %s" % (where, text, expected))


def convert_leaves(leaves, tf_dtype, where):
    """A flat numpy array of `tf_dtype` from JSON leaves, each checked for type and range."""
    kind = kind_of(tf_dtype)
    if kind is None:
        raise BadRequest("%s: the model takes dtype %s, which this server cannot feed" % (where, tf_dtype))
    if kind == "string":
        out = np.empty(len(leaves), dtype=object)
        for i, leaf in enumerate(leaves):
            out[i] = to_bytes(leaf, where)
        return out
    np_dtype = np.dtype(numpy_dtype(tf_dtype))
    if kind == "bool":
        for leaf in leaves:
            if not isinstance(leaf, bool):
                raise _leaf_error(where, leaf, "a boolean (true or false)")
        return np.array(leaves, dtype=bool)
    if kind == "int":
        info = np.iinfo(np_dtype)
        ints = []
        for leaf in leaves:
            if isinstance(leaf, bool) or not isinstance(leaf, (int, float)):
                raise _leaf_error(where, leaf, "an integer (%s)" % tf_dtype)
            if isinstance(leaf, float):
                if not leaf.is_integer():
                    raise _leaf_error(where, leaf, "an integer (%s)" % tf_dtype)
                leaf = int(leaf)
            if leaf < info.min or leaf > info.max:
                raise _leaf_error(where, leaf, "in the range of %s [%d, %d]" % (tf_dtype, info.min, info.max))
            ints.append(leaf)
        return np.array(ints, dtype=np_dtype)
    for leaf in leaves:  # floats: JSON numbers, NaN and Infinity included (TF Serving accepts them)
        if isinstance(leaf, bool) or not isinstance(leaf, (int, float)):
            raise _leaf_error(where, leaf, "a number (%s)" % tf_dtype)
    with np.errstate(over="ignore"):
        try:
            return np.array(leaves, dtype=np_dtype)
        except OverflowError:  # an integer too large for a float64
            raise BadRequest("%s: a number too large for %s" % (where, tf_dtype))


def to_bytes(leaf, where):
    if isinstance(leaf, str):
        return leaf.encode("utf-8", "surrogatepass")
    if is_b64(leaf):
        text = leaf["b64"]
        if not isinstance(text, str):
            raise _leaf_error(where, leaf, "a {\"b64\": string} value")
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise BadRequest("%s: {\"b64\": ...} does not hold valid base64" % where)
    raise _leaf_error(where, leaf, "a string or {\"b64\": ...}")


def check_shape(spec, shape, where):
    """Refuse a shape the spec cannot take: another rank, or another size in a fixed dimension."""
    if spec.shape is None:
        return
    if len(shape) != len(spec.shape):
        raise BadRequest("%s: shape %s has rank %d, the model takes %s (rank %d)"
                         % (where, shape_text(shape), len(shape), shape_text(spec.shape), len(spec.shape)))
    for i, (got, want) in enumerate(zip(shape, spec.shape)):
        if want is not None and got != want:
            raise BadRequest("%s: shape %s, the model takes %s (dimension %d must be %d)"
                             % (where, shape_text(shape), shape_text(spec.shape), i, want))


def to_array(value, spec, where):
    shape, leaves = walk(value, where)
    flat = convert_leaves(leaves, spec.dtype, where)
    check_shape(spec, shape, where)
    return flat.reshape(shape)


def unknown_names(given, signature, what):
    known = [s.name for s in signature.inputs]
    unknown = sorted(n for n in given if n not in known)
    missing = [n for n in known if n not in given]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append("unknown %s %s" % (what, ", ".join(repr(n) for n in unknown)))
        if missing:
            parts.append("missing %s %s" % (what, ", ".join(repr(n) for n in missing)))
        raise BadRequest("%s; signature %r takes %s" % ("; ".join(parts), signature.name, ", ".join(repr(n) for n in known) or "no inputs"))


# -- TensorFlow Serving ----------------------------------------------------------------------------


def tfs_row_inputs(instances, signature):
    """`instances` (row format) -> {name: array}, the rows stacked along a new first dimension."""
    if not isinstance(instances, list):
        raise BadRequest("'instances' must be a list (one item per row)")
    if not instances:
        raise BadRequest("'instances' is empty")
    names = [s.name for s in signature.inputs]
    named = all(isinstance(row, dict) and not is_b64(row) for row in instances)
    if len(names) == 1 and not named:
        columns = {names[0]: instances}
    else:
        if not named:
            raise BadRequest("'instances': signature %r takes several inputs (%s), so each instance must be an "
                             "object naming them" % (signature.name, ", ".join(repr(n) for n in names)))
        keys = set(instances[0])
        for i, row in enumerate(instances):
            if set(row) != keys:
                raise BadRequest("'instances': instance %d names %s, instance 0 names %s; every instance must name the same inputs"
                                 % (i, sorted(row), sorted(keys)))
        unknown_names(keys, signature, "input")
        columns = dict((name, [row[name] for row in instances]) for name in names)
    return dict((spec.name, to_array(columns[spec.name], spec, "input %r" % spec.name)) for spec in signature.inputs)


def tfs_columnar_inputs(inputs, signature):
    """`inputs` (columnar format) -> {name: array}: one tensor, or an object of named tensors."""
    names = [s.name for s in signature.inputs]
    if isinstance(inputs, dict) and not is_b64(inputs):  # an object is a map of named tensors
        unknown_names(inputs, signature, "input")
        return dict((spec.name, to_array(inputs[spec.name], spec, "input %r" % spec.name)) for spec in signature.inputs)
    if len(names) != 1:
        raise BadRequest("'inputs': signature %r takes several inputs (%s), so 'inputs' must be an object naming them"
                         % (signature.name, ", ".join(repr(n) for n in names)))
    spec = signature.inputs[0]
    return {spec.name: to_array(inputs, spec, "input %r" % spec.name)}


def tfs_value(array, name):
    """A numpy array as TF Serving answers it: nested lists; bytes as text, or {"b64"} for *_bytes names."""
    if array.dtype.kind in "OSV":
        encode = _b64 if name.endswith(BYTES_SUFFIX) else _text_or_b64
        return _map_nested(array.tolist(), encode)
    return array.tolist()


def _b64(value):
    if isinstance(value, str):
        value = value.encode("utf-8")
    return {"b64": base64.b64encode(bytes(value)).decode("ascii")}


def _text_or_b64(value):
    if isinstance(value, str):
        return value
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        return _b64(value)


def _map_nested(value, fn):
    if isinstance(value, list):
        return [_map_nested(v, fn) for v in value]
    return fn(value)


def tfs_row_outputs(outputs, rows):
    """{name: array} -> the `predictions` of a row-format answer."""
    names = sorted(outputs)
    for name in names:
        arr = outputs[name]
        if arr.ndim == 0 or arr.shape[0] != rows:
            raise BadRequest("output %r has shape %s, not one row per instance (%d): ask with the columnar "
                             "'inputs' format instead" % (name, shape_text(list(arr.shape)), rows))
    if len(names) == 1:
        return tfs_value(outputs[names[0]], names[0])
    columns = dict((name, tfs_value(outputs[name], name)) for name in names)
    return [dict((name, columns[name][i]) for name in names) for i in range(rows)]


def tfs_columnar_outputs(outputs):
    names = sorted(outputs)
    if len(names) == 1:
        return tfs_value(outputs[names[0]], names[0])
    return dict((name, tfs_value(outputs[name], name)) for name in names)


def tfs_signature_def(signature):
    """A Signature as TF Serving's metadata shows a SignatureDef (protobuf JSON mapping)."""

    def tensor(spec):
        shape = {"unknown_rank": spec.shape is None}
        if spec.shape is not None:
            shape["dim"] = [{"size": str(-1 if d is None else d), "name": ""} for d in spec.shape]
        return {"dtype": TF_DTYPE_ENUM.get(spec.dtype, "DT_INVALID"), "tensor_shape": shape, "name": spec.name}

    from .adapter import FULL_METHOD_NAMES

    return {
        "inputs": dict((s.name, tensor(s)) for s in signature.inputs),
        "outputs": dict((s.name, tensor(s)) for s in signature.outputs),
        "method_name": FULL_METHOD_NAMES[signature.method],
    }


# -- tf.Example for :classify and :regress ---------------------------------------------------------


def _varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number, payload):
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _feature(name, value, where):
    """One tf.train.Feature from a JSON value: strings -> bytes_list, integers -> int64_list, numbers -> float_list."""
    values = value if isinstance(value, list) else [value]
    if any(isinstance(v, list) for v in values):
        raise BadRequest("%s: feature %r must be a value or a flat list of values" % (where, name))
    if not values:
        return _field(3, b"")  # an empty int64_list
    if all(isinstance(v, str) or is_b64(v) for v in values):
        return _field(1, b"".join(_field(1, to_bytes(v, "%s feature %r" % (where, name))) for v in values))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if any(v < -(1 << 63) or v >= (1 << 63) for v in values):
            raise BadRequest("%s: feature %r holds an integer out of the int64 range" % (where, name))
        return _field(3, _field(1, b"".join(_varint(v) for v in values)))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        try:
            packed = struct.pack("<%df" % len(values), *[float(v) for v in values])
        except (OverflowError, struct.error):
            raise BadRequest("%s: feature %r holds a number out of the float32 range" % (where, name))
        return _field(2, _field(1, packed))
    raise BadRequest("%s: feature %r must hold strings, {\"b64\": ...} values, integers or numbers, one kind only" % (where, name))


def serialize_example(features, where):
    """A serialised tf.train.Example from {feature name: value}: the protobuf wire format, by hand."""
    if not isinstance(features, dict) or is_b64(features):
        raise BadRequest("%s must be an object of features" % where)
    entries = b""
    for name in sorted(features):
        entry = _field(1, name.encode("utf-8", "surrogatepass")) + _field(2, _feature(name, features[name], where))
        entries += _field(1, entry)
    return _field(1, entries)


def examples_input(body, signature):
    """The `examples` (and `context`) of a :classify/:regress request as one string tensor."""
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise BadRequest("'examples' must be a non-empty list of objects")
    context = body.get("context")
    if context is not None and (not isinstance(context, dict) or is_b64(context)):
        raise BadRequest("'context' must be an object of features")
    if len(signature.inputs) != 1 or signature.inputs[0].dtype != "string":
        raise BadRequest("signature %r does not take serialised tf.Example protos" % signature.name)
    serialised = np.empty(len(examples), dtype=object)
    for i, example in enumerate(examples):
        if not isinstance(example, dict) or is_b64(example):
            raise BadRequest("'examples'[%d] must be an object of features" % i)
        features = dict(context or {})
        features.update(example)
        serialised[i] = serialize_example(features, "'examples'[%d]" % i)
    spec = signature.inputs[0]
    check_shape(spec, [len(examples)], "input %r" % spec.name)
    return {spec.name: serialised}


def classify_result(outputs, rows):
    """TF Serving's classify answer: per example, [[label, score], ...]."""
    scores = outputs.get("scores")
    classes = outputs.get("classes")
    if scores is None and classes is None:
        raise BadRequest("the classify signature answered neither 'classes' nor 'scores'", 500)
    ref = scores if scores is not None else classes
    if ref.ndim == 1:
        ref = ref.reshape(rows, -1)
    result = []
    for i in range(rows):
        row = []
        for j in range(ref.shape[1]):
            label = _text_or_b64(classes.reshape(rows, -1)[i, j]) if classes is not None else ""
            score = float(scores.reshape(rows, -1)[i, j]) if scores is not None else 0.0
            row.append([label, score])
        result.append(row)
    return result


def regress_result(outputs, rows):
    values = outputs.get("outputs")
    if values is None:
        if len(outputs) != 1:
            raise BadRequest("the regress signature answered no 'outputs' tensor", 500)
        values = list(outputs.values())[0]
    return [float(v) for v in np.asarray(values, dtype=np.float64).reshape(rows, -1)[:, 0]]


# -- Open Inference Protocol v2 --------------------------------------------------------------------


def oip_tensor_meta(spec):
    return {"name": spec.name, "datatype": oip_datatype(spec.dtype),
            "shape": [-1] if spec.shape is None else [-1 if d is None else d for d in spec.shape]}


def _oip_shape(value, where):
    if not isinstance(value, list) or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in value):
        raise BadRequest("%s: 'shape' must be a list of non-negative integers" % where)
    if len(value) > MAX_RANK:
        raise BadRequest("%s: 'shape' has more than %d dimensions" % (where, MAX_RANK))
    count = 1
    for d in value:
        count *= d
    if count > MAX_ELEMENTS:
        # 400, not 413: the body is small, its declared shape is what is wrong (schemathesis, ST201).
        raise BadRequest("%s: 'shape' %s has more than %d elements" % (where, shape_text(value), MAX_ELEMENTS))
    return value, count


def oip_inputs(body, signature, binary=None):
    """An infer request's `inputs` -> {name: array}. binary: the bytes after the JSON header, if any."""
    items = body.get("inputs")
    if not isinstance(items, list) or not items:
        raise BadRequest("'inputs' must be a non-empty list of {name, shape, datatype, data}")
    seen = {}
    offset = 0
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest("'inputs'[%d] must be an object" % i)
        name = item.get("name")
        if not isinstance(name, str):
            raise BadRequest("'inputs'[%d] has no 'name' string" % i)
        where = "input %r" % name
        if name in seen:
            raise BadRequest("%s is given twice" % where)
        spec = signature.input(name)
        if spec is None:
            unknown_names([name], signature, "input")
        shape, count = _oip_shape(item.get("shape"), where)
        datatype = item.get("datatype")
        expected = oip_datatype(spec.dtype)
        if datatype != expected:
            raise BadRequest("%s: datatype %s, the model takes %s" % (where, _short(datatype), expected))
        params = optional_object(item, "parameters", "%s: 'parameters'" % where)
        size = params.get("binary_data_size")
        if size is not None:
            if "data" in item:
                raise BadRequest("%s: both 'data' and parameters.binary_data_size" % where)
            if binary is None:
                raise BadRequest("%s: parameters.binary_data_size without an Inference-Header-Content-Length header" % where)
            if isinstance(size, bool) or not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise BadRequest("%s: binary_data_size %r does not fit the %d bytes after the JSON header" % (where, size, len(binary) - offset))
            array = _from_binary(binary[offset:offset + size], datatype, count, where)
            offset += size
        else:
            if "data" not in item:
                raise BadRequest("%s has no 'data'" % where)
            _, leaves = walk(item["data"], where)
            if len(leaves) != count:
                raise BadRequest("%s: 'data' holds %d elements, 'shape' %s needs %d" % (where, len(leaves), shape_text(shape), count))
            array = convert_leaves(leaves, spec.dtype, where)
        check_shape(spec, shape, where)
        seen[name] = array.reshape(shape)
    if binary is not None and offset != len(binary):
        raise BadRequest("%d bytes after the JSON header belong to no input" % (len(binary) - offset))
    unknown_names(seen, signature, "input")
    return seen


def _short(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _from_binary(raw, datatype, count, where):
    if datatype == "BYTES":
        out = np.empty(count, dtype=object)
        pos = 0
        for i in range(count):
            if pos + 4 > len(raw):
                raise BadRequest("%s: binary BYTES data ends inside element %d" % (where, i))
            (n,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            if pos + n > len(raw):
                raise BadRequest("%s: binary BYTES data ends inside element %d" % (where, i))
            out[i] = bytes(raw[pos:pos + n])
            pos += n
        if pos != len(raw):
            raise BadRequest("%s: %d binary bytes after the last element" % (where, len(raw) - pos))
        return out
    dtype = np.dtype(OIP_NUMPY[datatype]).newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise BadRequest("%s: %d binary bytes, shape needs %d of %s" % (where, len(raw), count * dtype.itemsize, datatype))
    array = np.frombuffer(raw, dtype=dtype)
    if datatype == "BOOL" and np.any(array.view(np.uint8) > 1):
        raise BadRequest("%s: binary BOOL data holds a byte other than 0 and 1" % where)
    return array.astype(dtype.newbyteorder("="))


def oip_requested_outputs(body, signature):
    """The requested output names (all when none are asked) and which of them to answer as binary."""
    names = [s.name for s in signature.outputs]
    params = optional_object(body, "parameters", "'parameters'")
    binary_all = params.get("binary_data_output")
    if binary_all is not None and not isinstance(binary_all, bool):
        raise BadRequest("parameters.binary_data_output must be true or false")
    binary_all = bool(binary_all)
    requested = body.get("outputs")
    if requested is None:
        return None, set(names) if binary_all else set()
    if not isinstance(requested, list):
        raise BadRequest("'outputs' must be a list of {name}")
    wanted, binary = [], set()
    for i, item in enumerate(requested):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest("'outputs'[%d] must be an object with a 'name' string" % i)
        name = item["name"]
        if names and name not in names:
            raise BadRequest("unknown output %r; signature %r answers %s" % (name, signature.name, ", ".join(repr(n) for n in names)))
        p = optional_object(item, "parameters", "'outputs'[%d].parameters" % i)
        flag = p.get("binary_data")
        if flag is not None and not isinstance(flag, bool):
            raise BadRequest("'outputs'[%d].parameters.binary_data must be true or false" % i)
        if flag if flag is not None else binary_all:
            binary.add(name)
        wanted.append(name)
    return wanted, binary


def oip_output(name, array, binary):
    """(output JSON, binary bytes or None) for one output tensor."""
    datatype = _datatype_of(array)
    meta = {"name": name, "datatype": datatype, "shape": list(array.shape)}
    if binary:
        if datatype == "BYTES":
            raw = b"".join(struct.pack("<I", len(b)) + b for b in (_as_bytes(v) for v in array.reshape(-1)))
        else:
            raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        meta["parameters"] = {"binary_data_size": len(raw)}
        return meta, raw
    if datatype == "BYTES":
        meta["data"] = [_text_or_b64_str(v) for v in array.reshape(-1)]
    else:
        meta["data"] = array.reshape(-1).tolist()
    return meta, None


def _datatype_of(array):
    if array.dtype.kind in "OSUV":
        return "BYTES"
    for datatype, np_name in OIP_NUMPY.items():
        if np_name == array.dtype.name:
            return datatype
    return "FP32"


def _as_bytes(value):
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


def _text_or_b64_str(value):
    text = _text_or_b64(value)
    return text if isinstance(text, str) else text["b64"]
