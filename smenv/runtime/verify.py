"""smenv's in-container verifier: load the model, call it once, report JSON.

Runs INSIDE the image (copied to /opt/smenv/verify.py), never on the host: this is the only place
model code (Lambda layers, custom objects) is executed. Standard library and TensorFlow only, and
code that runs on the oldest Python the release table lists (3.5: no f-strings, no annotations, no
`from __future__ import annotations`, no dataclasses), because it runs on whatever Python the model
needs; tests/test_runtime_compat.py checks it with vermin and with the old grammar.

Output: human-readable progress on stderr, and one line `SMENV_RESULT {json}` on stdout.

Each signature (the Keras model itself, for a Keras model) is called once. An input the --sample-input
file does not hold is made up from what the host read in the model's files (the plan's
`model.call_hints`, smenv/model/input_hints.py): ids below an Embedding's vocabulary, text or an empty
tf.Example for strings, unknown lengths the layers accept (the next length is tried when a call fails).
A call that fails on made-up input leaves the signature "not checked" (`checked: false`), and the
model, which loaded, is not reported as failing; a call that fails on the user's own sample is.
"""

import argparse
import importlib
import inspect
import json
import platform
import sys
import time
import traceback

RESULT_PREFIX = "SMENV_RESULT "
SKIP_SIGNATURES = ("__saved_model_init_op",)
KERAS_SIGNATURE = "keras_model"
DEFAULT_LENGTHS = (8, 32, 128)  # for unknown dimensions when the plan has no hint (older plans)
MAX_ELEMENTS = 1 << 24  # a made-up input larger than this is not allocated
TEXT = b"smenv checks that the model answers"  # made-up text for string inputs


def log(message):
    sys.stderr.write("smenv-verify: %s\n" % message)
    sys.stderr.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Load a model and call it once (runs inside the smenv image).")
    parser.add_argument("--plan", default="/opt/smenv/smenv.json", help="the smenv.json written by smenv generate")
    parser.add_argument("--model", default=None, help="model path (default: the plan's)")
    parser.add_argument("--sample-input", default=None, help=".npz file whose arrays are named after the inputs")
    parser.add_argument("--gpu", action="store_true", help="report the GPUs TensorFlow sees")
    args = parser.parse_args(argv)

    result = {"ok": False, "stage": "start", "timings": {}, "signatures": [], "python": platform.python_version()}
    try:
        with open(args.plan) as f:
            plan = json.load(f)
        run(plan, args, result)
    except BaseException as exc:  # report every failure as data; the host classifies it
        if isinstance(exc, KeyboardInterrupt):
            raise
        result["ok"] = False
        result["error"] = {
            "type": type(exc).__name__,
            "module": type(exc).__module__,
            "message": _clip(str(exc), 6000),
            "traceback": _clip(traceback.format_exc(), 12000),
        }
        log("FAILED at %s: %s: %s" % (result["stage"], type(exc).__name__, str(exc).splitlines()[0] if str(exc) else ""))
    sys.stdout.write(RESULT_PREFIX + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
    return 0 if result["ok"] else 1


def _clip(text, limit):
    """Keep both ends: the cause is often first (Keras) and the raise site last (TensorFlow)."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "\n[... %d characters cut ...]\n" % (len(text) - limit) + text[-half:]


def run(plan, args, result):
    model_info = plan["model"]
    path = args.model or plan["image"]["model_path"]
    timings = result["timings"]

    result["stage"] = "import"
    started = time.perf_counter()
    import numpy as np
    import tensorflow as tf

    for module in plan["image"].get("imports", []):
        __import__(module)  # companion packages register their ops when imported
    for name in plan["image"].get("code", []):
        # User modules (--code): importing them runs their @register_keras_serializable decorators,
        # which is how Keras 2 formats find custom classes by name.
        module = name[:-3] if name.endswith(".py") else name
        if module.isidentifier():
            __import__(module)
    timings["import_tensorflow_s"] = round(time.perf_counter() - started, 3)
    result["tensorflow"] = tf.__version__
    result["numpy"] = np.__version__
    log("TensorFlow %s imported in %.1fs" % (tf.__version__, timings["import_tensorflow_s"]))
    if args.gpu:
        result["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]

    samples = _load_samples(args.sample_input, np) if args.sample_input else {}
    result["stage"] = "load"
    started = time.perf_counter()
    loader = plan["environment"]["loader"]
    if loader == "keras":
        keras = _keras_module(plan, tf)
        result["keras"] = getattr(keras, "__version__", None) or _keras_version(tf)
        model = load_keras_model(keras, path, plan)
        timings["load_s"] = round(time.perf_counter() - started, 3)
        builder = plan["environment"].get("model_builder")
        how = "%s(), then load_weights" % builder if builder else "%s.models.load_model" % keras.__name__
        log("model loaded with %s in %.1fs" % (how, timings["load_s"]))
        result["stage"] = "call"
        entry, error = _call_keras(model, samples, _hint(plan, KERAS_SIGNATURE), np, tf)
        result["signatures"].append(entry)
        if error is not None and entry["fatal"]:
            raise error  # the user's own input: the model does not answer it
    else:
        tags = _tags(model_info)
        signatures, how = _load_saved_model(path, tags, tf)
        result["loader"] = how
        timings["load_s"] = round(time.perf_counter() - started, 3)
        log("SavedModel loaded (tags %s, %s) in %.1fs" % (",".join(tags or []), how, timings["load_s"]))
        result["keras"] = _keras_version(tf)
        result["stage"] = "call"
        names = [n for n in sorted(signatures.keys()) if n not in SKIP_SIGNATURES]
        primary = "serving_default" if "serving_default" in names else (names[0] if names else None)
        for name in ([primary] if primary else []) + [n for n in names if n != primary]:
            entry, error = _call_signature(name, signatures[name], samples, _hint(plan, name), name == primary, np, tf)
            result["signatures"].append(entry)
            if error is not None and entry["fatal"]:
                raise RuntimeError("signature %s failed: %s: %s" % (name, type(error).__name__, entry["error"]["message"]))
    if result["signatures"]:
        timings["first_call_s"] = result["signatures"][0].get("seconds")
    result["ok"] = True
    result["stage"] = "done"


def _load_saved_model(path, tags, tf):
    """(signatures by name, how they were loaded). tf.saved_model.load first; a TF 1 graph it cannot
    take (reference variables, one tensor fed under two input names, ...) is loaded again the way TF 1
    served it, into a tf.compat.v1 session whose signatures are called with feeds and fetches."""
    try:
        loaded = tf.saved_model.load(path, tags=tags) if tags else tf.saved_model.load(path)
        return loaded.signatures, "tf.saved_model.load"
    except Exception as exc:
        if not _is_v1_graph(path, tags, tf):
            raise
        log("tf.saved_model.load failed on this TF 1 graph (%s: %s); loading it into a tf.compat.v1 session"
            % (type(exc).__name__, _first_line(str(exc))))
        try:
            return _v1_session_signatures(path, tags, tf), "tf.compat.v1 session (tf.saved_model.load: %s)" % type(exc).__name__
        except Exception as again:
            log("the tf.compat.v1 session loader failed too (%s: %s)" % (type(again).__name__, _first_line(str(again))))
            raise exc


def _is_v1_graph(path, tags, tf):
    """True when the meta graph to load has no object graph: written by TF 1 (or TF 2's v1 APIs)."""
    import os

    from tensorflow.core.protobuf import saved_model_pb2

    pb = os.path.join(path, "saved_model.pb")
    if not os.path.isfile(pb):
        return False
    model = saved_model_pb2.SavedModel()
    with open(pb, "rb") as f:
        model.ParseFromString(f.read())
    for mg in model.meta_graphs:
        if not tags or set(mg.meta_info_def.tags) == set(tags):
            return not mg.HasField("object_graph_def")
    return False


class _V1Signature(object):
    """A TF 1 SignatureDef in a session, called like a TF 2 signature function: keyword tensors in,
    a dict of arrays out. Input specs come from the graph's tensors (old SignatureDefs often record no
    shape); a sparse (COO) input is fed every element of the array made for it."""

    def __init__(self, session, signature, tf):
        self._session = session
        self._sparse = tf.compat.v1.SparseTensorValue
        graph = session.graph
        self._feeds, specs = {}, {}
        for key, info in signature.inputs.items():
            encoding = info.WhichOneof("encoding")
            if encoding == "coo_sparse":
                coo = info.coo_sparse
                indices = graph.get_tensor_by_name(coo.indices_tensor_name)
                self._feeds[key] = tf.compat.v1.SparseTensor(
                    indices, graph.get_tensor_by_name(coo.values_tensor_name),
                    graph.get_tensor_by_name(coo.dense_shape_tensor_name))
                rank = indices.shape[1] if indices.shape.rank == 2 else None
                rank = getattr(rank, "value", rank)
                shape = tf.TensorShape(None if rank is None else [None] * int(rank))
                specs[key] = tf.TensorSpec(shape, tf.dtypes.as_dtype(info.dtype), name=key)
            elif encoding == "name":
                tensor = graph.get_tensor_by_name(info.name)
                self._feeds[key] = tensor
                specs[key] = tf.TensorSpec(tensor.shape, tensor.dtype.base_dtype, name=key)
            else:
                raise ValueError("input %s is a %s tensor, which smenv cannot feed to a TF 1 signature" % (key, encoding))
        self._outputs = {}
        for key, info in signature.outputs.items():
            if info.WhichOneof("encoding") == "name":
                self._outputs[key] = info.name
        self.structured_input_signature = ((), specs)

    def __call__(self, **kwargs):
        feeds = {}
        for key, value in kwargs.items():
            array = value.numpy() if hasattr(value, "numpy") else value
            target = self._feeds[key]
            if isinstance(target, str) or hasattr(target, "op"):
                feeds[target] = array
            else:  # every element, so the sparse input holds what a dense one would
                import numpy as np

                indices = np.array(list(np.ndindex(*array.shape)), dtype=np.int64).reshape(-1, array.ndim)
                feeds[target] = self._sparse(indices, array.reshape(-1), np.array(array.shape, dtype=np.int64))
        return self._session.run(self._outputs, feed_dict=feeds)


def _v1_session_signatures(path, tags, tf):
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta = tf.compat.v1.saved_model.loader.load(session, tags or ["serve"], path)
    return dict((name, _V1Signature(session, sig, tf)) for name, sig in meta.signature_def.items())


def _keras_module(plan, tf):
    if plan["environment"].get("legacy_keras"):
        import tf_keras

        return tf_keras
    if plan["environment"].get("keras_major") == 3:
        import keras

        return keras
    return tf.keras


def load_keras_model(keras, path, plan):
    """keras.models.load_model, with safe_mode=False where the plan says so (--unsafe-deserialization).
    Keras 3 and tf.keras >= 2.13 take safe_mode; older tf.keras have no safe mode to turn off.
    A weights-only file is read into the model the plan's --model-builder function returns."""
    builder = plan["environment"].get("model_builder")
    if builder:
        return _built_model(builder, path)
    kwargs = {"compile": False}
    if plan["environment"].get("keras_safe_mode", True) is False:
        config = getattr(keras, "config", None)
        if hasattr(config, "enable_unsafe_deserialization"):
            config.enable_unsafe_deserialization()  # Keras 3: the loading thread's setting, beside the keyword below
        try:
            parameters = inspect.signature(keras.models.load_model).parameters
        except (TypeError, ValueError):
            parameters = {}
        if "safe_mode" in parameters:
            kwargs["safe_mode"] = False
    return keras.models.load_model(path, **kwargs)


def _built_model(builder, path):
    """MODULE:FUNCTION called with no arguments, then load_weights(path): Keras matches the file's
    layers to the model's in order (legacy HDF5) or by name (Keras 3 .weights.h5), and raises
    ValueError when the layer counts or a weight's shape do not fit (diagnose.py: weights_mismatch)."""
    module_name, _, function = builder.partition(":")
    model = getattr(importlib.import_module(module_name), function)()
    if not callable(getattr(model, "load_weights", None)):
        raise TypeError("--model-builder %s returned %s, not a Keras model" % (builder, type(model).__name__))
    model.load_weights(path)
    return model


def _keras_version(tf):
    for get in (lambda: tf.keras.__version__, lambda: __import__("keras").__version__):
        try:
            return get()
        except Exception:  # tf.keras is a lazy loader in some releases; keras may be absent
            continue
    return None


def _tags(model_info):
    for mg in model_info.get("meta_graphs") or []:
        if "serve" in mg["tags"]:
            return list(mg["tags"])
    graphs = model_info.get("meta_graphs") or []
    return list(graphs[0]["tags"]) if graphs else None


def _load_samples(path, np):
    """The --sample-input arrays by name; never a pickle (the host has checked the file already)."""
    with np.load(path, allow_pickle=False) as data:
        return dict((name, data[name]) for name in data.files)


def _hint(plan, signature):
    """The host's call hint for a signature (smenv/model/input_hints.py); {} when the plan has none."""
    for hint in (plan.get("model") or {}).get("call_hints") or []:
        if isinstance(hint, dict) and hint.get("signature") == signature:
            return hint
    return {}


def _served_hint(plan, signature):
    """The hint for a served signature: its own, else the Keras model's. A .keras/.h5 model is served by
    its Keras call (as "serving_default"); a Keras SavedModel by its own signatures, whose inputs are the
    Keras model's. A plain SavedModel has no "keras_model" hint."""
    return _hint(plan, signature) or _hint(plan, "keras_model")


def _sample(name, samples):
    """The user's array for an input: by its name, or the name without the `_input` Keras 2 appends."""
    if name in samples:
        return samples[name]
    if name.endswith("_input") and name[:-6] in samples:
        return samples[name[:-6]]
    return None


def _shape_list(shape):
    """A TensorShape, a KerasTensor's tuple or a TF 1 list of Dimensions as [int or None]; None for unknown rank."""
    if getattr(shape, "ndims", 0) is None:
        return None
    dims = []
    for d in shape:
        d = getattr(d, "value", d)
        dims.append(None if d is None else int(d))
    return dims


def _numpy_dtype(name):
    if name in ("bfloat16", "half"):
        return "float16" if name == "half" else "float32"  # tf.constant casts to the input's dtype
    if name.startswith("q"):  # qint8, quint8, ...: quantized ints
        return name[1:]
    return name


def _made_up(dtype, shape, hint, length, np):
    """(value, what it is) for one input: dtype and shape from TensorFlow, values as the hint says."""
    if shape is None and isinstance(hint.get("shape"), list):
        shape = hint["shape"]
    if shape is None:
        dims = [1]  # unknown rank: one value per batch item
    else:
        dims = [(1 if i == 0 else length) if d is None else d for i, d in enumerate(shape)]
    count = 1
    for d in dims:
        count *= d
    if count > MAX_ELEMENTS:
        raise ValueError("a made-up input of shape %s would have %d elements: not allocated" % (dims, count))
    kind = hint.get("values")
    if dtype == "string":
        if kind == "example":
            return np.full(dims, b"", dtype=object), "empty serialised tf.Example"
        return np.full(dims, TEXT, dtype=object), "text %r" % TEXT.decode()
    low, high = hint.get("low"), hint.get("high")
    if kind == "ids" and isinstance(low, int) and isinstance(high, int) and high > low:
        value = np.random.RandomState(0).randint(low, high, size=dims)
        return value.astype(_numpy_dtype(dtype)), "ids in [%d, %d)" % (low, high)
    if dtype == "bool":
        return np.zeros(dims, dtype=bool), "False"
    if dtype.startswith(("int", "uint", "qint", "quint")):
        return np.zeros(dims, dtype=_numpy_dtype(dtype)), "zeros"
    value = np.random.RandomState(0).standard_normal(dims)
    return value.astype(_numpy_dtype(dtype)), "standard normal"


def _call(entry, specs, samples, hint, invoke, np):
    """Call `invoke` once with one array per input spec; (outputs, None) or (None, the exception).

    specs: [(name, dtype name, shape or None)]. Arrays the sample does not hold are made up as the
    hint says; while a call fails and some made-up input has unknown dimensions, the next length is
    tried. Records in `entry` what was fed and, on failure, the error.
    """
    hints = [h for h in hint.get("inputs") or [] if isinstance(h, dict)]
    by_name = dict((h.get("name"), h) for h in hints)
    made_up = [name for name, _, _ in specs if _sample(name, samples) is None]
    unknown = any(shape is not None and None in shape[1:] for name, _, shape in specs if name in made_up)
    lengths = [n for n in hint.get("lengths") or [] if isinstance(n, int) and not isinstance(n, bool) and n > 0]
    lengths = (lengths or list(DEFAULT_LENGTHS)) if unknown else [None]
    entry["synthetic"] = bool(made_up)
    error = None
    tried = []
    for length in lengths:
        fed = []
        try:
            values = []
            for i, (name, dtype, shape) in enumerate(specs):
                value = _sample(name, samples)
                what = "the sample's array"
                if value is None:
                    h = by_name.get(name) or (hints[i] if len(hints) == len(specs) else {})
                    value, what = _made_up(dtype, shape, h, length or 1, np)
                values.append(value)
                fed.append({"name": name, "dtype": dtype, "shape": list(value.shape), "synthetic": name in made_up,
                            "fed": "%s%s %s" % (value.dtype if value.dtype != object else "string", list(value.shape), what)})
            started = time.perf_counter()
            outputs = invoke(values)
            entry["seconds"] = round(time.perf_counter() - started, 4)
            entry["inputs"] = fed
            if tried:
                entry["lengths_tried"] = tried + [length]
            return outputs, None
        except Exception as exc:  # reported as data: the host decides what it means
            error = exc
            entry["inputs"] = fed
            if length is not None:
                tried.append(length)
                log("%s: length %d rejected (%s)" % (entry["name"], length, type(exc).__name__))
    entry["error"] = {"type": type(error).__name__, "message": _clip(str(error), 4000)}
    entry["checked"] = False
    if len(tried) > 1:
        entry["lengths_tried"] = tried
    return None, error


def _finish(entry, error, primary, has_inputs):
    """Whether a failed call fails the verification: only when no made-up input was in it."""
    entry["primary"] = primary
    user_input = has_inputs and not entry.get("synthetic")
    entry["fatal"] = error is not None and not entry.get("synthetic") and (primary or user_input)
    if error is not None:
        how = "with made-up input: not checked" if entry.get("synthetic") else "with the sample input" if has_inputs else ""
        log("%s failed %s (%s: %s)" % (entry["name"], how, type(error).__name__, _first_line(str(error))))


def _first_line(text):
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def _call_signature(name, fn, samples, hint, primary, np, tf):
    entry = {"name": name, "inputs": [], "outputs": []}
    try:
        _, kwargs_spec = fn.structured_input_signature
        keys = sorted(kwargs_spec)
        specs = [(k, kwargs_spec[k].dtype.name, _shape_list(kwargs_spec[k].shape)) for k in keys]
    except Exception as exc:  # a signature whose inputs cannot be read cannot be fed
        entry.update(synthetic=True, checked=False, error={"type": type(exc).__name__, "message": _clip(str(exc), 4000)})
        _finish(entry, exc, primary, True)
        return entry, exc

    def invoke(values):
        return fn(**dict((k, tf.constant(v, dtype=kwargs_spec[k].dtype)) for k, v in zip(keys, values)))

    outputs, error = _call(entry, specs, samples, hint, invoke, np)
    _finish(entry, error, primary, bool(specs))
    if error is None:
        for key, value in sorted(outputs.items()):
            entry["outputs"].append({"name": key, "dtype": _dtype_name(value), "shape": _shape_list(value.shape)})
        log("signature %s: %d input(s) -> %s in %.3fs" % (name, len(specs), ", ".join("%s%s" % (o["name"], o["shape"]) for o in entry["outputs"]), entry["seconds"]))
    return entry, error


def _dtype_name(value):
    """A tensor's or (from a tf.compat.v1 session) an array's dtype, as TensorFlow names it."""
    name = value.dtype.name
    return "string" if name == "object" or name.startswith("bytes") else name


def _call_keras(model, samples, hint, np, tf):
    entry = {"name": KERAS_SIGNATURE, "inputs": [], "outputs": []}
    specs = []
    for t in getattr(model, "inputs", None) or []:
        dtype = t.dtype if isinstance(t.dtype, str) else t.dtype.name
        specs.append((t.name.split(":")[0], dtype, _shape_list(t.shape)))
    if not specs:  # a subclassed model records no inputs: nothing says what to feed it
        error = ValueError("the model records no inputs (a subclassed model?), so no input can be made up for it")
        entry.update(synthetic=True, checked=False, error={"type": "ValueError", "message": str(error)})
        _finish(entry, error, True, True)
        return entry, error

    def invoke(values):
        values = [tf.constant(v) if v.dtype.kind in "OSU" else v for v in values]  # strings as tensors
        return model(values[0] if len(values) == 1 else values, training=False)

    outputs, error = _call(entry, specs, samples, hint, invoke, np)
    _finish(entry, error, True, True)
    if error is None:
        flat = outputs if isinstance(outputs, (list, tuple)) else list(outputs.values()) if isinstance(outputs, dict) else [outputs]
        for i, value in enumerate(flat):
            dtype = value.dtype if isinstance(value.dtype, str) else value.dtype.name
            entry["outputs"].append({"name": "output_%d" % i, "dtype": dtype, "shape": _shape_list(value.shape)})
        log("model called: %s in %.3fs" % (", ".join(str(o["shape"]) for o in entry["outputs"]), entry["seconds"]))
    return entry, error


if __name__ == "__main__":
    sys.exit(main())
