"""`python -m serve.probe`: is the server in this container ready, and does it answer a prediction?

Base images carry no curl, so this is the standard library (and numpy for `--predict`), run inside
the container against 127.0.0.1:PORT:

- `python -m serve.probe` (the image's HEALTHCHECK, a Kubernetes exec probe): GET /v2/health/ready,
  which answers 200 only after the model loaded and answered its warm-up call, and 503 while it
  loads, after a failed load and while draining. Exit 0 when ready, else 1, with one line saying so.
- `python -m serve.probe --predict [--sample-input FILE.npz]` (smenv build's check, through `docker
  exec`): reads the default signature from TF Serving's metadata endpoint, makes up its inputs as
  the verifier does (the plan's call hints; a sample's arrays where given), POSTs them to
  `:predict` (columnar form), asks the Open Inference Protocol's model-ready endpoint, and prints
  one line `smenv-serve-probe: {json}` with what came back.

Python 3.5 syntax (see the package docstring).
"""

import json
import os
import sys
import time

from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

READY_PATH = "/v2/health/ready"
RESULT_PREFIX = "smenv-serve-probe: "


def _base():
    return "http://127.0.0.1:%s" % (os.environ.get("PORT") or "8501")


def _timeout():
    return float(os.environ.get("SMENV_PROBE_TIMEOUT") or "4")


def http(method, path, body=None, timeout=None):
    """(status, body bytes) of one request to the server; raises URLError/OSError when it cannot connect."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = Request(_base() + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        answer = urlopen(request, timeout=timeout or _timeout())
        return answer.getcode(), answer.read()
    except HTTPError as e:
        return e.code, e.read()


def ready():
    try:
        status, body = http("GET", READY_PATH)
    except (URLError, OSError) as e:
        print("not ready: %s%s: %s" % (_base(), READY_PATH, getattr(e, "reason", e)))
        return 1
    if status == 200:
        print("ready")
        return 0
    print("not ready: %s%s answered %d %s" % (_base(), READY_PATH, status, body[:200].decode("utf-8", "replace").strip()))
    return 1


def _plan():
    path = os.environ.get("SMENV_PLAN") or "/opt/smenv/smenv.json"
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _spec(tensor):
    """(dtype name, shape or None) of a TensorInfo in TF Serving's metadata."""
    from .codec import TF_DTYPE_ENUM

    names = dict((enum, name) for name, enum in TF_DTYPE_ENUM.items())
    shape = tensor.get("tensor_shape") or {}
    dims = None if shape.get("unknown_rank") else [int(d.get("size", -1)) for d in shape.get("dim") or []]
    return names.get(tensor.get("dtype"), "float32"), (None if dims is None else [None if d < 0 else d for d in dims])


def predict_request(metadata, plan, samples):
    """(signature name, TF Serving :predict body, what was fed) for the default signature."""
    import numpy as np

    from . import adapter, codec

    try:
        from verify import _served_hint, _made_up, _sample, DEFAULT_LENGTHS
    except ImportError:
        from smenv.runtime.verify import _served_hint, _made_up, _sample, DEFAULT_LENGTHS
    defs = ((metadata.get("metadata") or {}).get("signature_def") or {}).get("signature_def") or {}
    name = adapter.default_signature_name(defs)
    hint = _served_hint(plan, name)
    hints = dict((h.get("name"), h) for h in hint.get("inputs") or [] if isinstance(h, dict))
    lengths = [n for n in hint.get("lengths") or [] if isinstance(n, int) and n > 0] or list(DEFAULT_LENGTHS)
    inputs, fed = {}, {}
    for input_name, tensor in sorted((defs[name].get("inputs") or {}).items()):
        dtype, shape = _spec(tensor)
        value = _sample(input_name, samples)
        what = "your sample"
        if value is None:
            value, what = _made_up(dtype, shape, hints.get(input_name) or {}, lengths[0], np)
        value = np.asarray(value)
        inputs[input_name] = codec.tfs_value(value, input_name + ("_bytes" if value.dtype.kind in "OSV" else ""))
        fed[input_name] = "%s %s%s" % (what, dtype, list(value.shape))
    return name, {"signature_name": name, "inputs": inputs}, fed


def predict(sample_input=None):
    """One prediction through the served API; the result line on stdout. Exit 0 when it answered 200."""
    result = {"ok": False}
    try:
        plan = _plan()
        samples = {}
        if sample_input:
            import numpy as np

            with np.load(sample_input, allow_pickle=False) as data:
                samples = dict((k, data[k]) for k in data.files)
        name = os.environ.get("MODEL_NAME") or (plan.get("image") or {}).get("model_name") or "model"
        result["model_name"] = name
        status, body = http("GET", "/v1/models/%s/metadata" % name)
        if status != 200:
            raise RuntimeError("GET /v1/models/%s/metadata answered %d %s" % (name, status, body[:300].decode("utf-8", "replace")))
        signature, request, fed = predict_request(json.loads(body.decode("utf-8")), plan, samples)
        result.update(signature=signature, fed=fed)
        started = time.time()
        status, body = http("POST", "/v1/models/%s:predict" % name, request, timeout=60)
        result["seconds"] = round(time.time() - started, 4)
        result["status"] = status
        answer = json.loads(body.decode("utf-8")) if body else {}
        if status == 200:
            outputs = answer.get("outputs")
            if not isinstance(outputs, dict):
                outputs = {"outputs": outputs}
            result["outputs"] = [{"name": k, "shape": _shape_of(v)} for k, v in sorted(outputs.items())]
            result["ok"] = True
        else:
            result["error"] = str(answer.get("error") if isinstance(answer, dict) else answer)[:500]
        status, _ = http("GET", "/v2/models/%s/ready" % name)
        result["v2_ready"] = status == 200
    except Exception as e:  # anything: reported to the host, which decides what it means
        result["error"] = result.get("error") or "%s: %s" % (type(e).__name__, str(e)[:500])
    print(RESULT_PREFIX + json.dumps(result, sort_keys=True))
    return 0 if result["ok"] else 1


def _shape_of(value):
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return shape


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--predict"]:
        sample = argv[argv.index("--sample-input") + 1] if "--sample-input" in argv[:-1] else None
        return predict(sample)
    return ready()


if __name__ == "__main__":
    sys.exit(main())
