"""The seam between the HTTP API and a model.

An adapter says what the model takes and gives (`signatures()`) and calls it
(`call(signature_name, {input name: numpy array}) -> {output name: numpy array}`). The HTTP layer
checks every request against the signatures before it calls, so an adapter sees only arrays of the
declared dtypes and compatible shapes. `TensorFlowAdapter` loads a SavedModel with
tf.saved_model.load (a Keras SavedModel too, as TF Serving does) and a .keras/.h5 file with Keras'
load_model, with the verifier's helpers (smenv/runtime/verify.py); smenv/runtime/serve/testing.py has
a numpy one.

Python 3.5 syntax (see the package docstring).
"""

import json
import os
import sys
import time

PREDICT = "predict"
CLASSIFY = "classify"
REGRESS = "regress"
METHOD_NAMES = {
    "tensorflow/serving/predict": PREDICT,
    "tensorflow/serving/classify": CLASSIFY,
    "tensorflow/serving/regress": REGRESS,
}
FULL_METHOD_NAMES = dict((short, full) for full, short in METHOD_NAMES.items())
DEFAULT_SIGNATURE = "serving_default"
SKIP_SIGNATURES = ("__saved_model_init_op",)
KERAS_SIGNATURE = "serving_default"  # TF Serving's name for the signature a Keras model exports


class ModelInputError(Exception):
    """The model refused the input (TensorFlow's InvalidArgumentError): a client error, HTTP 400."""


class TensorSpec(object):
    """One input or output: its name, TensorFlow dtype name ("float32", "string", ...) and shape.

    shape is a list of ints and None (unknown dimension), or None when even the rank is unknown.
    """

    __slots__ = ("name", "dtype", "shape")

    def __init__(self, name, dtype, shape):
        self.name = name
        self.dtype = dtype
        self.shape = None if shape is None else [None if d is None or d < 0 else int(d) for d in shape]

    def batched(self):
        """Whether the first dimension is a free batch dimension."""
        return bool(self.shape) and self.shape[0] is None

    def __repr__(self):
        return "TensorSpec(%r, %r, %r)" % (self.name, self.dtype, self.shape)


class Signature(object):
    """A callable entry point of the model: named inputs and outputs, and what kind of call it is."""

    def __init__(self, name, inputs, outputs, method=PREDICT):
        self.name = name
        self.inputs = sorted(inputs, key=lambda s: s.name)
        self.outputs = sorted(outputs, key=lambda s: s.name)
        self.method = method

    def input(self, name):
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None

    def batchable(self):
        """Whether requests can be stacked along the first dimension of every input."""
        return bool(self.inputs) and all(s.batched() for s in self.inputs)


class Adapter(object):
    """What the server needs from a model. Subclasses set `platform` and implement the two methods."""

    platform = "unknown"

    def signatures(self):
        """{name: Signature}."""
        raise NotImplementedError

    def call(self, signature_name, inputs):
        """{input name: numpy array} -> {output name: numpy array}; raise ModelInputError for bad input."""
        raise NotImplementedError

    def warmup_inputs(self, signature):
        """Inputs for the warm-up call: a list of candidate {name: array}, tried in order."""
        return [zeros_for(signature)]


def default_signature_name(signatures):
    if DEFAULT_SIGNATURE in signatures:
        return DEFAULT_SIGNATURE
    names = sorted(signatures)
    return names[0] if names else None


def zeros_for(signature, length=1):
    """One made-up row per input: zeros, False or empty strings; unknown dimensions set to `length`."""
    import numpy as np

    from .codec import numpy_dtype

    values = {}
    for spec in signature.inputs:
        dims = [1] if spec.shape is None else [(1 if i == 0 else length) if d is None else d for i, d in enumerate(spec.shape)]
        if spec.dtype == "string":
            values[spec.name] = np.full(dims, b"", dtype=object)
        else:
            values[spec.name] = np.zeros(dims, dtype=numpy_dtype(spec.dtype))
    return values


# -- TensorFlow ------------------------------------------------------------------------------------


def _verify_module():
    """smenv/runtime/verify.py: beside this package in the image (/opt/smenv), or smenv's own."""
    try:
        from smenv.runtime import verify
    except ImportError:
        import verify
    return verify


class TensorFlowAdapter(Adapter):
    """A model as the image holds it, loaded as smenv/runtime/verify.py loads it.

    plan: the smenv.json written by `smenv generate` (its environment.loader, image.imports,
    image.code and model.call_hints are read); path: the model's path (default: the plan's).
    """

    def __init__(self, plan, path=None, samples=None):
        self.plan = plan
        self.path = path or plan["image"]["model_path"]
        self.samples = samples or {}
        self._signatures = {}
        self._functions = {}
        self._keras_model = None
        self._load()

    def _load(self):
        verify = _verify_module()
        import numpy as np  # noqa: F401  (imported before TensorFlow, as verify.py does)

        started = time.perf_counter()
        import tensorflow as tf

        self.import_seconds = time.perf_counter() - started  # most of a cold start: said apart from the load
        self.tf = tf
        for module in self.plan["image"].get("imports", []):
            __import__(module)
        for name in self.plan["image"].get("code", []):
            module = name[:-3] if name.endswith(".py") else name
            if module.isidentifier():
                __import__(module)
        self.tensorflow_version = tf.__version__
        keras_loader = self.plan["environment"]["loader"] == "keras"
        if not keras_loader or os.path.isdir(self.path):
            # A Keras SavedModel is served as TensorFlow Serving serves it: its SavedModel signatures, with
            # their names, inputs and outputs (a TF Serving client of the model works unchanged), not the
            # Keras model's call. The verifier has loaded it with Keras; only one without signatures is
            # served through Keras.
            if self._load_saved_model(tf, verify) or not keras_loader:
                return
            self._loaded = None
        keras = verify._keras_module(self.plan, tf)
        self._keras_model = verify.load_keras_model(keras, self.path, self.plan)
        self.platform = "tensorflow_keras"
        self._signatures[KERAS_SIGNATURE] = self._keras_signature(verify)

    def _load_saved_model(self, tf, verify):
        """Load the SavedModel's signatures as TF Serving would; returns how many can be served."""
        self.platform = "tensorflow_savedmodel"
        tags = verify._tags(self.plan["model"])
        if tf.__version__.startswith("1.") and hasattr(tf.compat, "v2"):
            tf.compat.v1.enable_v2_behavior()  # TF 1.15: the TF 2 loader needs eager execution
            loaded = tf.compat.v2.saved_model.load(self.path, tags=tags)
        else:
            try:
                loaded = tf.saved_model.load(self.path, tags=tags) if tags else tf.saved_model.load(self.path)
            except Exception as exc:
                # A TF 1 graph the TF 2 loader rejects (reference variables, ...) is served the way the
                # verifier calls it: in a tf.compat.v1 session, with feeds and fetches (verify.py).
                if not verify._is_v1_graph(self.path, tags, tf):
                    raise
                sys.stderr.write("smenv-serve: tf.saved_model.load failed on this TF 1 graph (%s: %s); serving it "
                                 "from a tf.compat.v1 session\n" % (type(exc).__name__, _first_line(str(exc))))
                loaded = _V1Loaded(verify._v1_session_signatures(self.path, tags, tf))
        self._loaded = loaded  # keeps the variables the signatures use alive
        methods = _method_names(self.path)
        for name in sorted(loaded.signatures.keys()):
            if name in SKIP_SIGNATURES:
                continue
            fn = loaded.signatures[name]
            self._functions[name] = fn
            self._signatures[name] = self._saved_signature(name, fn, methods.get(name), verify)
        return len(self._signatures)

    def _saved_signature(self, name, fn, method_name, verify):
        _, kwargs = fn.structured_input_signature
        inputs = [TensorSpec(k, kwargs[k].dtype.name, verify._shape_list(kwargs[k].shape)) for k in sorted(kwargs)]
        outputs = []
        structured = getattr(fn, "structured_outputs", None) or {}
        if isinstance(structured, dict):
            for k in sorted(structured):
                spec = structured[k]
                outputs.append(TensorSpec(k, spec.dtype.name, verify._shape_list(spec.shape)))
        return Signature(name, inputs, outputs, METHOD_NAMES.get(method_name or "", PREDICT))

    def _keras_signature(self, verify):
        model = self._keras_model
        inputs = []
        for t in getattr(model, "inputs", None) or []:
            dtype = t.dtype if isinstance(t.dtype, str) else t.dtype.name
            inputs.append(TensorSpec(t.name.split(":")[0], dtype, verify._shape_list(t.shape)))
        outputs = []
        names = list(getattr(model, "output_names", None) or [])
        for i, t in enumerate(getattr(model, "outputs", None) or []):
            dtype = t.dtype if isinstance(t.dtype, str) else t.dtype.name
            outputs.append(TensorSpec(names[i] if i < len(names) else "output_%d" % i, dtype, verify._shape_list(t.shape)))
        self._keras_input_order = [s.name for s in inputs]
        self._keras_output_order = [s.name for s in outputs]
        return Signature(KERAS_SIGNATURE, inputs, outputs, PREDICT)

    def signatures(self):
        return self._signatures

    def call(self, signature_name, inputs):
        tf = self.tf
        try:
            if self._keras_model is not None:
                values = [_tensor(tf, inputs[name]) for name in self._keras_input_order]
                result = self._keras_model(values[0] if len(values) == 1 else values, training=False)
                if isinstance(result, dict):
                    outputs = result
                else:
                    flat = list(result) if isinstance(result, (list, tuple)) else [result]
                    outputs = dict(zip(self._keras_output_order, flat))
            else:
                sig = self._signatures[signature_name]
                fn = self._functions[signature_name]
                outputs = fn(**dict((s.name, tf.constant(inputs[s.name], dtype=s.dtype)) for s in sig.inputs))
        except tf.errors.InvalidArgumentError as exc:
            raise ModelInputError(_first_line(getattr(exc, "message", None) or str(exc)))
        except UnicodeDecodeError as exc:
            # TensorFlow's error for a string input it cannot parse quotes the input's bytes, and turning
            # that message into a Python str fails (a serialized tf.Example that is not one: found by
            # tests/test_keras_savedmodel_serving.py). The input is the cause: a client error.
            raise ModelInputError("the model refused the input, and TensorFlow's message about it quotes bytes "
                                  "that are not UTF-8 (%s); check that string inputs hold what the signature "
                                  "expects, e.g. serialized tf.Example protos" % _first_line(str(exc)))
        except (ValueError, TypeError) as exc:
            # A TF 1 session converts each feed to its placeholder's dtype with numpy: a value that does
            # not convert is the client's input, not a model failure (a TF 1 eval graph whose feature
            # placeholders are not the dtypes its signature declares: the corpus's eval-nightly model).
            if not isinstance(getattr(self, "_loaded", None), _V1Loaded):
                raise
            raise ModelInputError("an input does not convert to the graph's own type: %s" % _first_line(str(exc)))
        return dict((k, _numpy(v)) for k, v in outputs.items())

    def warmup_inputs(self, signature):
        """The verifier's made-up inputs (call hints from the plan, then each length), then zeros."""
        verify = _verify_module()
        import numpy as np

        hint = verify._served_hint(self.plan, signature.name)
        hints = dict((h.get("name"), h) for h in hint.get("inputs") or [] if isinstance(h, dict))
        candidates = []
        for length in [n for n in hint.get("lengths") or [] if isinstance(n, int) and n > 0] or list(verify.DEFAULT_LENGTHS):
            try:
                values = {}
                for spec in signature.inputs:
                    sample = verify._sample(spec.name, self.samples)
                    if sample is None:
                        sample, _ = verify._made_up(spec.dtype, spec.shape, hints.get(spec.name) or {}, length, np)
                    values[spec.name] = sample
                candidates.append(values)
            except Exception:  # a made-up input too large to allocate: the next candidate
                continue
        return candidates + [zeros_for(signature)]


def _tensor(tf, value):
    return tf.constant(value) if value.dtype.kind in "OSU" else value


class _V1Loaded(object):
    """The session's signatures where the TF 2 loader's object would be (its `signatures` map)."""

    def __init__(self, signatures):
        self.signatures = signatures


def _numpy(value):
    value = value.numpy() if hasattr(value, "numpy") else value
    import numpy as np

    value = np.asarray(value)
    if value.dtype.name == "bfloat16":  # no numpy dtype: answered as float32
        value = value.astype(np.float32)
    return value


def _first_line(text):
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()[:500]
    return "the model refused the input"


def _method_names(path):
    """{signature name: method_name} from saved_model.pb, read with TensorFlow's own proto classes."""
    try:
        from tensorflow.core.protobuf import saved_model_pb2

        proto = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
        methods = {}
        for mg in proto.meta_graphs:
            for name, sig in mg.signature_def.items():
                methods.setdefault(name, sig.method_name)
        return methods
    except Exception as exc:  # a missing or unreadable file: every signature is a predict one
        sys.stderr.write("smenv-serve: method names not read from saved_model.pb (%s)\n" % type(exc).__name__)
        return {}


def load_plan(path):
    with open(path) as f:
        return json.load(f)
