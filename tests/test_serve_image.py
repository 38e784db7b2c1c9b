"""The image serves its model as deployed: examples/half_plus_two built once, run with its own command.

Real engine, real containers, no mocks: `smenv build` checks the image through its served API; the
image run with `docker run` and production's hardened flags answers a TensorFlow Serving client
(plain HTTP with requests, as such clients are written) and an Open Inference Protocol v2 client
(tritonclient[http]); its HEALTHCHECK turns healthy; `docker stop` (SIGTERM) drains and exits 0;
`smenv serve IMAGE` prints requests that work when pasted. One image build for the module.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import requests

from conftest import REPO
from smenv import pipeline
from smenv.env.resolve import ResolveOptions

pytestmark = pytest.mark.docker
MODEL = REPO / "examples" / "half_plus_two"
TAG = "smenv-h1-serve/half_plus_two:test"
HARDENED = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
READY_WITHIN = 300  # seconds: TensorFlow's import alone takes 5-10 s, more on a loaded CI machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, container: str | None = None, alive=lambda: True) -> bool:
    """True once the server at `url` is ready; False as soon as `alive()` is not. Not ready within
    READY_WITHIN fails the test, with the container's log when one is named."""
    deadline = time.monotonic() + READY_WITHIN
    while alive() and time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return True
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    if not alive():
        return False
    logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True).stderr if container else ""
    raise AssertionError(f"{container or url} not ready within {READY_WITHIN} s: {logs[-2000:]}")


@pytest.fixture(scope="module")
def built(docker_engine, base_image_311):
    result = pipeline.build(pipeline.ModelInput(MODEL), MODEL / "requirements.txt", ResolveOptions(), tag=TAG,
                            engine=docker_engine)
    yield result
    docker_engine.remove_image(TAG, force=True)


@pytest.fixture(scope="module")
def server(built):
    name, port = f"smenv-h1-serve-{os.getpid()}", free_port()
    subprocess.run(["docker", "run", "-d", "--name", name, *HARDENED, "-p", f"127.0.0.1:{port}:8501", TAG],
                   check=True, capture_output=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, name)
        yield name, url, port
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_build_checks_the_image_as_deployed(built):
    verdict = built.verdict
    assert built.exit_code == 0 and verdict.serve is not None and verdict.serve.ok, verdict.serve
    served = verdict.serve.result
    assert served["status"] == 200 and served["signature"] == "serving_default" and served["v2_ready"] is True
    assert served["outputs"] == [{"name": "outputs", "shape": [1]}]
    assert verdict.serve.stop_exit_code == 0 and verdict.serve.ready_seconds > 0
    report = built.to_json()["verification"]
    assert report["load"]["ok"] is True and report["serve"]["ok"] is True


def test_the_image_says_how_it_is_run(built, docker_engine):
    config = docker_engine.image_info(TAG).config
    assert config["Cmd"] == ["python", "-m", "serve"] and config["User"] == "10001:10001"
    assert config["ExposedPorts"] == {"8501/tcp": {}}
    assert config["Healthcheck"]["Test"] == ["CMD", "python", "-m", "serve.probe"]
    assert config["Labels"]["org.smenv.model.name"] == "half_plus_two"


def test_a_tensorflow_serving_client_works_unchanged(server):
    name, url, _ = server
    status = requests.get(f"{url}/v1/models/half_plus_two", timeout=10).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    rows = requests.post(f"{url}/v1/models/half_plus_two:predict", json={"instances": [1.0]}, timeout=30)
    assert rows.status_code == 200 and rows.json() == {"predictions": [2.5]}  # y = 0.5 x + 2
    columns = requests.post(f"{url}/v1/models/half_plus_two:predict", json={"inputs": {"x": [3.0]}}, timeout=30)
    assert columns.json() == {"outputs": [3.5]}
    other = requests.post(f"{url}/v1/models/half_plus_two:predict", timeout=30,
                          json={"signature_name": "regress_x2_to_y3", "inputs": {"inputs": [1.0]}})
    assert other.json() == {"outputs": [3.5]}  # y = 0.5 x + 3
    # This TF 2 export records every signature as a predict one, so :regress is refused as TF Serving does.
    regress = requests.post(f"{url}/v1/models/half_plus_two:regress", timeout=30,
                            json={"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}]})
    assert regress.status_code == 400 and "method_name to be tensorflow/serving/regress" in regress.json()["error"]
    bad = requests.post(f"{url}/v1/models/half_plus_two:predict", json={"inputs": {"nope": [1.0]}}, timeout=30)
    assert bad.status_code == 400 and "nope" in bad.json()["error"]


def test_an_open_inference_protocol_client_works(server):
    import tritonclient.http as httpclient

    _, _, port = server
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("half_plus_two")
    x = httpclient.InferInput("x", [1], "FP32")
    x.set_data_from_numpy(np.array([6.0], dtype=np.float32))
    answer = client.infer("half_plus_two", [x], outputs=[httpclient.InferRequestedOutput("y")])
    assert answer.as_numpy("y").tolist() == [5.0]


def test_it_runs_as_non_root_on_a_read_only_root(server):
    name, _, _ = server
    uid = subprocess.run(["docker", "exec", name, "id", "-u"], capture_output=True, text=True, check=True).stdout.strip()
    assert uid == "10001"
    write = subprocess.run(["docker", "exec", name, "touch", "/opt/smenv/x"], capture_output=True, text=True)
    assert write.returncode != 0 and "Read-only file system" in write.stderr


def test_the_healthcheck_turns_healthy(server):
    name, _, _ = server
    deadline = time.monotonic() + 60  # the first check runs one interval (10 s) after the start
    status = None
    while time.monotonic() < deadline:
        status = json.loads(subprocess.run(["docker", "inspect", name], capture_output=True, text=True,
                                           check=True).stdout)[0]["State"]["Health"]["Status"]
        if status == "healthy":
            return
        time.sleep(1)
    raise AssertionError(f"health status {status!r} after 60 s")


def test_smenv_serve_prints_requests_that_work_when_pasted(built):
    port = free_port()
    run = subprocess.run([sys.executable, "-m", "smenv", "serve", TAG, "--port", str(port), "--detach"],
                         capture_output=True, text=True, timeout=READY_WITHIN + 60, cwd=REPO)
    container = next((w.strip(";,.") for w in run.stdout.split() if w.startswith("smenv-serve-")), None)
    try:
        assert run.returncode == 0, run.stdout + run.stderr
        curls = [line.strip() for line in run.stdout.splitlines() if line.strip().startswith("curl -s -X POST")]
        assert len(curls) == 2 and container
        # the user's server, not a throw-away container a cleanup of smenv's leftovers would stop
        labels = json.loads(subprocess.run(["docker", "inspect", "-f", "{{json .Config.Labels}}", container],
                                           capture_output=True, text=True, check=True).stdout)
        assert labels.get("org.smenv.serve") == TAG and "org.smenv.throwaway" not in labels, labels
        for curl in curls:
            answer = subprocess.run(shlex.split(curl), capture_output=True, text=True, timeout=60)
            body = json.loads(answer.stdout)
            assert "error" not in body and ("outputs" in body), body
    finally:
        if container:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)


def test_a_server_killed_for_memory_under_load_is_exit_29_and_leaves_nothing(built):
    """`smenv serve` in the foreground, with a memory limit the model fits in but a burst of large requests
    does not: the kernel kills the container, and smenv says so in one line (exit 29) and removes it."""
    import threading

    def serve_containers() -> set[str]:
        return set(subprocess.run(["docker", "ps", "-aq", "--filter", "name=smenv-serve-", "--filter", f"ancestor={TAG}"],
                                  capture_output=True, text=True, check=True).stdout.split())

    before = serve_containers()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "smenv", "serve", TAG, "--port", str(port), "--memory", "900m"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert wait_ready(url, alive=lambda: proc.poll() is None), proc.communicate()
        body = ('{"instances": [' + ", ".join(["0.5"] * 3_000_000) + "]}").encode()  # 15 MB, under the 64 MB limit

        def flood():
            while proc.poll() is None:
                try:
                    requests.post(f"{url}/v1/models/half_plus_two:predict", data=body, timeout=60)
                except requests.RequestException:
                    time.sleep(0.2)

        threads = [threading.Thread(target=flood, daemon=True) for _ in range(12)]
        for t in threads:
            t.start()
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 29, out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("smenv: error: ") and "killed at its memory limit (900m)" in last, err[-2000:]
    assert serve_containers() <= before  # the killed container was removed


def test_sigterm_drains_and_exits_0(server):
    """Last: it stops the module's server."""
    name, url, _ = server
    started = time.monotonic()
    subprocess.run(["docker", "stop", name], check=True, capture_output=True)
    seconds = time.monotonic() - started
    state = json.loads(subprocess.run(["docker", "inspect", name], capture_output=True, text=True).stdout)[0]["State"]
    logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stderr
    assert state["ExitCode"] == 0 and "drained" in logs, logs[-1000:]
    assert seconds < 10  # within docker stop's grace period: never SIGKILLed
