"""The server on every waitress a lock may hold: from 1.3.1 (the newest at a 2019 cut-off) to today's.

smenv/runtime/serve/server.py uses waitress's public create_server() and a few stable attributes
(channel_class, task_class, error_task_class, accepting, active_channels, maintenance through
adj.channel_timeout). Each waitress release that a lock picks for some TensorFlow release of
smenv/data/tf_releases.json (see docs/serving.md) is installed from PyPI into its own directory and
the server is run on it as a process: a prediction, a JSON refusal from waitress itself, and the
SIGTERM drain of an in-flight request.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from test_serve_process import NAME, Proc, slow

# The releases the cut-offs pick (uv pip compile --exclude-newer, per TensorFlow release date and Python).
VERSIONS = ["1.3.1", "1.4.3", "1.4.4", "2.0.0", "2.1.2", "3.0.0", "3.0.2"]


@pytest.fixture(scope="module")
def waitress_dirs(tmp_path_factory):
    return tmp_path_factory.mktemp("waitress")


def install(root, version):
    target = root / version
    if not target.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary", ":all:",
                        "--target", str(target), "waitress==" + version], check=True, timeout=300)
    return target


@pytest.mark.network
@pytest.mark.parametrize("version", VERSIONS)
def test_the_server_on_waitress(version, waitress_dirs):
    target = install(waitress_dirs, version)
    pythonpath = os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = Proc("--max-request-bytes", "4096", env={"PYTHONPATH": pythonpath})
    try:
        proc.wait_ready()
        version_seen = subprocess.run([sys.executable, "-c", "import waitress, os; print(os.path.dirname(waitress.__file__))"],
                                      env=dict(os.environ, PYTHONPATH=pythonpath), capture_output=True, text=True).stdout
        assert version_seen.startswith(str(target))
        r = requests.post(proc.url + "/v1/models/%s:predict" % NAME, json={"instances": [1.0]})
        assert r.json() == {"predictions": [2.5]}
        big = requests.post(proc.url + "/v1/models/%s:predict" % NAME, data=b"1" * 5000)
        assert big.status_code == 413 and "error" in big.json()
        with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as sock:
            # waitress refuses a bad Content-Length with 400 from 1.4 on; 1.3.1 reads it as 0 and the
            # application answers 404: JSON either way.
            sock.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: abc\r\n\r\n")
            answer = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 404")) and "error" in json.loads(answer.partition(b"\r\n\r\n")[2])
        results = []
        worker = threading.Thread(target=slow, args=(proc, 1.0, results))
        worker.start()
        time.sleep(0.3)
        proc.p.send_signal(signal.SIGTERM)
        worker.join(30)
        assert proc.p.wait(10) == 0
        assert results == [(200, "close", {"predictions": [1.0]})]
    finally:
        proc.kill()
