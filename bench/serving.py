"""Section 5 of `make bench`: the image as deployed, under load.

The smenv image of the example model runs as production would (its own command, read-only root, a
tmpfs /tmp, non-root), published on a loopback port. wrk (Debian's package) sends TF Serving `:predict`
requests over keep-alive connections at 1 and at 16 concurrent clients; the model's own call is timed
inside the same container, with the same input, by the same TensorFlow (a `docker exec` that loads the
model and calls the signature in a loop), so "what the server adds" is the difference of the medians.
Memory is the container's cgroup usage, sampled during the 16-client run. Time to ready is `docker run`
until /v1/models/NAME says AVAILABLE, broken down with the server's own log lines.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.request import urlopen

from images import LABEL, docker

BODY = {"instances": [1.0]}  # half_plus_two's serving_default: x float32 [batch]

# The model's own call, inside the container: the signature the server calls, the same input, N calls.
MODEL_CALL = """
import json, time, statistics
import tensorflow as tf
plan = json.load(open('/opt/smenv/smenv.json'))
model = tf.saved_model.load(plan['image']['model_path'])
f = model.signatures['serving_default']
x = tf.constant([1.0])
for _ in range(50):
    f(x=x)
times = []
for _ in range(2000):
    t = time.perf_counter()
    out = f(x=x)
    {k: v.numpy() for k, v in out.items()}
    times.append(time.perf_counter() - t)
times.sort()
print(json.dumps({"p50": times[len(times) // 2], "p99": times[int(len(times) * 0.99)], "n": len(times)}))
"""

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body   = '%s'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("SMENV %%d %%d %%d %%d %%d %%f %%f\\n", summary.requests, summary.errors.connect,
    summary.errors.read + summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(image: str, env: dict[str, str]) -> tuple[str, int, float]:
    port = free_port()
    started = time.monotonic()
    args = ["run", "-d", "--label", LABEL, "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "-p", f"127.0.0.1:{port}:8501"]
    for name, value in env.items():
        args += ["-e", f"{name}={value}"]
    container = docker(*args, image).strip()
    return container, port, started


def wait_ready(port: int, model: str, started: float, limit: float = 180.0) -> float:
    url = f"http://127.0.0.1:{port}/v1/models/{model}"
    while time.monotonic() - started < limit:
        try:
            with urlopen(url, timeout=2) as answer:
                states = [v.get("state") for v in json.load(answer).get("model_version_status", [])]
                if "AVAILABLE" in states:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the server on port {port} was not ready within {limit:.0f} s")


def wrk(port: int, model: str, clients: int, seconds: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % json.dumps(BODY))
    try:
        out = subprocess.run(["wrk", "-t", str(min(clients, 2)), "-c", str(clients), "-d", f"{seconds}s",
                              "--timeout", "10s", "-s", script.name, f"http://127.0.0.1:{port}/v1/models/{model}:predict"],
                             capture_output=True, text=True, check=True).stdout
    finally:
        Path(script.name).unlink()
    line = next(line for line in out.splitlines() if line.startswith("SMENV "))
    requests, connect, rw, status, timeout, p50, p99 = line.split()[1:]
    return {"clients": clients, "seconds": seconds, "requests": int(requests),
            "throughput_rps": round(int(requests) / seconds, 1),
            "errors": {"connect": int(connect), "read_write": int(rw), "non_2xx": int(status), "timeout": int(timeout)},
            "p50_ms": round(float(p50) / 1000, 3), "p99_ms": round(float(p99) / 1000, 3)}


def memory_bytes(container: str) -> int:
    stats = json.loads(docker("stats", "--no-stream", "--format", "{{json .}}", container))
    usage = stats["MemUsage"].split("/")[0].strip()
    number, unit = re.match(r"([\d.]+)\s*([KMGT]?i?B)", usage).groups()
    scale = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "kB": 1000, "MB": 10**6, "GB": 10**9}
    return int(float(number) * scale.get(unit, 1))


def sampled(container: str, stop: threading.Event, every: float = 5.0) -> list[int]:
    samples: list[int] = []

    def loop() -> None:
        while not stop.is_set():
            samples.append(memory_bytes(container))
            stop.wait(every)

    threading.Thread(target=loop, daemon=True).start()
    return samples


def ready_breakdown(container: str) -> dict:
    """The server's own figures, from its log (smenv/runtime/serve/server.py writes them)."""
    # The server logs to stderr, which `docker logs` gives on its own stderr.
    log = subprocess.run(["docker", "logs", container], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True).stdout
    return parse_ready_breakdown(log)


def parse_ready_breakdown(log: str) -> dict:
    """{import_seconds, load_seconds, warmup_seconds} from the server's "model ... ready" line (None if absent)."""
    figures = {}
    for key, pattern in (("import_seconds", r"TensorFlow \S+ imported in ([\d.]+)\s*s"),
                         ("load_seconds", r"loaded in ([\d.]+)\s*s"), ("warmup_seconds", r"warmed up in ([\d.]+)\s*s")):
        found = re.search(pattern, log)
        figures[key] = float(found.group(1)) if found else None
    return figures


def run(image: str, model: str, seconds: int, log) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is missing (tools/system-packages bench installs it)")
    result: dict = {"image": image, "model": model, "body": BODY}
    container, port, started = start(image, {})
    try:
        result["ready_seconds"] = round(wait_ready(port, model, started), 2)
        result["ready"] = ready_breakdown(container)
        log(f"serve: ready in {result['ready_seconds']} s {result['ready']}")
        result["model_call"] = json.loads(docker("exec", container, "python", "-c", MODEL_CALL).strip().splitlines()[-1])
        log(f"serve: the model's own call: p50 {result['model_call']['p50'] * 1000:.3f} ms")
        wrk(port, model, 1, 5)  # warm-up, not reported
        result["one_client"] = wrk(port, model, 1, seconds)
        log(f"serve: 1 client: {result['one_client']}")
        stop = threading.Event()
        samples = sampled(container, stop)
        result["sixteen_clients"] = wrk(port, model, 16, seconds)
        stop.set()
        result["memory_bytes"] = samples
        log(f"serve: 16 clients: {result['sixteen_clients']}; memory {[s >> 20 for s in samples]} MiB")
    finally:
        docker("rm", "-f", container, check=False)
    container, port, started = start(image, {"SMENV_BATCHING": "1"})
    try:
        wait_ready(port, model, started)
        wrk(port, model, 16, 5)
        result["batching_one_client"] = wrk(port, model, 1, min(seconds, 20))
        result["batching_sixteen_clients"] = wrk(port, model, 16, min(seconds, 20))
        log(f"serve: batching on: 1 client {result['batching_one_client']['throughput_rps']} rps, "
            f"16 clients {result['batching_sixteen_clients']['throughput_rps']} rps")
    finally:
        docker("rm", "-f", container, check=False)
    result["server_adds_p50_ms"] = round(result["one_client"]["p50_ms"] - result["model_call"]["p50"] * 1000, 3)
    result["memory_growth_fraction"] = round(max(samples) / min(samples) - 1, 3) if samples else None
    return result


def model_name(image: str) -> str:
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", image)) or {}
    return labels.get("org.smenv.model.name") or "half_plus_two"
