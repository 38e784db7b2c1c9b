"""smenv's in-container verifier: load the model, call it once, report JSON.

Runs INSIDE the image (copied to /opt/smenv/verify.py), never on the host: this is the only place
model code (Lambda layers, custom objects) is executed. Standard library and TensorFlow only, and
code that runs on the oldest Python the release table lists (3.5: no f-strings, no annotations, no
`from __future__ import annotations`, no dataclasses), because it runs on whatever Python the model
needs; tests/test_runtime_compat.py checks it with vermin and with the old grammar.

Output: human-readable progress on stderr, and one line `SMENV_RESULT {json}` on stdout.
"""

import argparse
import json
import platform
import sys
import time
import traceback

RESULT_PREFIX = "SMENV_RESULT "
SKIP_SIGNATURES = ("__saved_model_init_op",)


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

    samples = dict(np.load(args.sample_input)) if args.sample_input else {}
    result["stage"] = "load"
    started = time.perf_counter()
    loader = plan["environment"]["loader"]
    if loader == "keras":
        keras = _keras_module(plan, tf)
        result["keras"] = getattr(keras, "__version__", None) or _keras_version(tf)
        model = keras.models.load_model(path, compile=False)
        timings["load_s"] = round(time.perf_counter() - started, 3)
        log("model loaded with %s.models.load_model in %.1fs" % (keras.__name__, timings["load_s"]))
        result["stage"] = "call"
        result["signatures"].append(_call_keras(model, samples, np, tf))
    else:
        tags = _tags(model_info)
        loaded = tf.saved_model.load(path, tags=tags) if tags else tf.saved_model.load(path)
        timings["load_s"] = round(time.perf_counter() - started, 3)
        log("SavedModel loaded (tags %s) in %.1fs" % (",".join(tags or []), timings["load_s"]))
        result["keras"] = _keras_version(tf)
        result["stage"] = "call"
        names = [n for n in sorted(loaded.signatures.keys()) if n not in SKIP_SIGNATURES]
        primary = "serving_default" if "serving_default" in names else (names[0] if names else None)
        for name in ([primary] if primary else []) + [n for n in names if n != primary]:
            entry = _call_signature(name, loaded.signatures[name], samples, np, tf)
            entry["primary"] = name == primary
            result["signatures"].append(entry)
            if name == primary and entry.get("error"):
                raise RuntimeError("signature %s failed: %s" % (name, entry["error"]["message"]))
    if result["signatures"]:
        timings["first_call_s"] = result["signatures"][0].get("seconds")
    result["ok"] = True
    result["stage"] = "done"


def _keras_module(plan, tf):
    if plan["environment"].get("legacy_keras"):
        import tf_keras

        return tf_keras
    if plan["environment"].get("keras_major") == 3:
        import keras

        return keras
    return tf.keras


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


def _example_value(dtype_name, shape, np):
    dims = [1 if d is None else d for d in shape]
    if dtype_name == "string":
        return np.full(dims, b"", dtype=object)
    if dtype_name == "bool":
        return np.zeros(dims, dtype=bool)
    if dtype_name.startswith(("int", "uint")):
        return np.zeros(dims, dtype=dtype_name)
    rng = np.random.default_rng(0)
    return rng.standard_normal(dims).astype(dtype_name if dtype_name != "bfloat16" else "float32")


def _call_signature(name, fn, samples, np, tf):
    entry = {"name": name, "inputs": [], "outputs": []}
    try:
        _, kwargs_spec = fn.structured_input_signature
        inputs = {}
        for key, spec in sorted(kwargs_spec.items()):
            shape = spec.shape.as_list() if spec.shape.rank is not None else [1]
            value = samples[key] if key in samples else _example_value(spec.dtype.name, shape, np)
            inputs[key] = tf.constant(value, dtype=spec.dtype)
            entry["inputs"].append({"name": key, "dtype": spec.dtype.name, "shape": list(inputs[key].shape), "synthetic": key not in samples})
        started = time.perf_counter()
        outputs = fn(**inputs)
        entry["seconds"] = round(time.perf_counter() - started, 4)
        for key, value in sorted(outputs.items()):
            entry["outputs"].append({"name": key, "dtype": value.dtype.name, "shape": list(value.shape)})
        log("signature %s: %d input(s) -> %s in %.3fs" % (name, len(inputs), ", ".join("%s%s" % (o["name"], o["shape"]) for o in entry["outputs"]), entry["seconds"]))
    except Exception as exc:
        entry["error"] = {"type": type(exc).__name__, "message": str(exc)[-2000:]}
        log("signature %s failed with synthetic input: %s" % (name, type(exc).__name__))
    return entry


def _call_keras(model, samples, np, tf):
    entry = {"name": "keras_model", "inputs": [], "outputs": [], "primary": True}
    inputs = []
    for t in model.inputs:
        name = t.name.split(":")[0]
        dtype = t.dtype if isinstance(t.dtype, str) else t.dtype.name
        shape = list(t.shape)
        value = samples[name] if name in samples else _example_value(dtype, shape, np)
        inputs.append(value)
        entry["inputs"].append({"name": name, "dtype": dtype, "shape": list(value.shape), "synthetic": name not in samples})
    started = time.perf_counter()
    outputs = model(inputs[0] if len(inputs) == 1 else inputs, training=False)
    entry["seconds"] = round(time.perf_counter() - started, 4)
    flat = outputs if isinstance(outputs, (list, tuple)) else list(outputs.values()) if isinstance(outputs, dict) else [outputs]
    for i, value in enumerate(flat):
        dtype = value.dtype if isinstance(value.dtype, str) else value.dtype.name
        entry["outputs"].append({"name": "output_%d" % i, "dtype": dtype, "shape": list(value.shape)})
    log("model called: %s in %.3fs" % (", ".join(str(o["shape"]) for o in entry["outputs"]), entry["seconds"]))
    return entry


if __name__ == "__main__":
    sys.exit(main())
