"""`smenv serve MODEL|IMAGE`: run an smenv image's model server on this machine and show how to call it.

Given a model path, builds the image first (as `smenv build --no-verify`: the server's own readiness
is the check); given an image, uses it. The container runs as in production (its own command and
user, read-only root with a tmpfs /tmp, no capabilities) with its port published on 127.0.0.1 only.
Once ready, a request for each protocol, made up from the default signature as the build's check
makes it (serve/probe.py), is printed ready to paste. In the foreground (the default) the server's
log follows and Ctrl-C stops it with SIGTERM (it drains) and removes the container; with --detach it
keeps running and the command to stop it is printed.
"""

from __future__ import annotations

import json
import secrets
import shlex
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from smenv.docker.engine import Sandbox, Service
from smenv.errors import SmenvError

CURL_INLINE_LIMIT = 1500  # a longer request body goes to a file, and curl reads it with -d @FILE


class ServeFailed(SmenvError):
    exit_code = 32  # as `smenv build` when the image does not serve its model (README, exit codes)
    kind = "serve_failed"


class ServerOutOfMemory(SmenvError):
    exit_code = 29  # as a verification killed at its memory limit (README, exit codes)
    kind = "out_of_memory"


@dataclass(frozen=True)
class Running:
    service: Service
    image: str
    container: str
    url: str
    model_name: str
    ready_seconds: float
    requests: tuple[tuple[str, str], ...]  # (what, curl command line)


def start(engine, image: str, port: int, sandbox: Sandbox, progress=lambda message: None) -> Running:
    """Start `image`'s server published on 127.0.0.1:port, wait until it is ready, make the requests."""
    from smenv.verify.runner import image_plan

    plan = image_plan(engine, image)  # NotAnSmenvImage (exit 6) for an image smenv did not build
    name = f"smenv-serve-{secrets.token_hex(4)}"
    url = f"http://127.0.0.1:{port}"
    progress(f"starting {image} as {name} on {url}")
    service = engine.start_service(image, sandbox, publish=port, name=name)
    try:
        started = time.monotonic()
        said = started
        while True:
            state = service.state()
            if not state.get("Running"):
                tail = " | ".join(service.logs().strip().splitlines()[-3:])
                raise ServeFailed(f"the server exited with code {state.get('ExitCode')} before it was ready: {tail}", image)
            if _get(f"{url}/v2/health/ready")[0] == 200:
                break
            now = time.monotonic()
            if now - started > sandbox.timeout_s:
                raise ServeFailed(f"not ready within {sandbox.timeout_s:.0f} s (see `docker logs {name}`; "
                                  f"`smenv verify {image}` diagnoses a model that does not load)", image)
            if now - said >= 10:
                progress(f"waiting for the model to load and warm up ({now - started:.0f} s)")
                said = now
            time.sleep(0.5)
        ready = round(time.monotonic() - started, 1)
        model_name = ((plan.get("image") or {}).get("model_name")) or "model"
        return Running(service, image, name, url, model_name, ready, tuple(example_requests(url, model_name, plan)))
    except BaseException:
        service.remove()
        raise


def example_requests(url: str, model_name: str, plan: dict) -> list[tuple[str, str]]:
    """curl command lines for TF Serving's :predict and OIP v2 infer, with inputs made up from the
    default signature as the served metadata describes it."""
    from smenv.runtime.serve import codec
    from smenv.runtime.serve.probe import _shape_of, _spec, predict_request

    status, body = _get(f"{url}/v1/models/{model_name}/metadata")
    if status != 200:
        return []
    metadata = json.loads(body)
    signature, predict_body, _ = predict_request(metadata, plan, {})
    defs = metadata["metadata"]["signature_def"]["signature_def"][signature]["inputs"]
    v2_inputs = []
    for name, tensor in sorted(defs.items()):
        dtype, _ = _spec(tensor)
        value = predict_body["inputs"][name]
        shape = _shape_of(value)
        data = _flat(value)
        v2_inputs.append({"name": name, "shape": shape, "datatype": codec.oip_datatype(dtype),
                          "data": [d["b64"] if isinstance(d, dict) else d for d in data]})
    v2_body = {"inputs": v2_inputs}
    if signature != "serving_default":
        v2_body["parameters"] = {"signature_name": signature}
    return [
        ("TensorFlow Serving REST", _curl(f"{url}/v1/models/{model_name}:predict", predict_body, "predict")),
        ("Open Inference Protocol v2", _curl(f"{url}/v2/models/{model_name}/infer", v2_body, "infer")),
    ]


def _flat(value):
    if isinstance(value, list):
        return [leaf for item in value for leaf in _flat(item)]
    return [value]


def _curl(url: str, body: dict, what: str) -> str:
    text = json.dumps(body, separators=(",", ":"))
    if len(text) <= CURL_INLINE_LIMIT:
        return f"curl -s -X POST {url} -H 'Content-Type: application/json' -d {shlex.quote(text)}"
    path = Path(tempfile.mkdtemp(prefix="smenv-serve-")) / f"{what}.json"
    path.write_text(text)
    return f"curl -s -X POST {url} -H 'Content-Type: application/json' -d @{path}"


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def stopped(running: Running, memory: str) -> str:
    """What `smenv serve` says when the server stops on its own (its log has ended): a line for a clean
    exit; an error for a container the kernel killed at its memory limit, or any other failure."""
    state = running.service.state()
    code = state.get("ExitCode")
    if state.get("OOMKilled"):
        raise ServerOutOfMemory(
            f"the server was killed at its memory limit ({memory}) while serving; raise --memory, or let it hold "
            "less at once: SMENV_MAX_REQUEST_BYTES (largest body), SMENV_MODEL_THREADS and SMENV_MAX_QUEUE "
            "(requests held together)", running.image)
    if code not in (0, None):
        tail = " | ".join(running.service.logs().strip().splitlines()[-3:])
        raise ServeFailed(f"the server exited with code {code}: {tail}", running.image)
    return f"The server stopped: exit {code}"

