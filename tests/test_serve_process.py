"""The server as a process, as the image runs it: live before ready, and the SIGTERM drain.

`python -m smenv.runtime.serve` with the numpy stand-in model (smenv/runtime/serve/testing.py) on
127.0.0.1, an ephemeral port read from its log.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

NAME = "hpt"


class Proc:
    def __init__(self, *args, env=None, adapter="fake_slow"):
        cmd = [sys.executable, "-m", "smenv.runtime.serve", "--adapter", "smenv.runtime.serve.testing:" + adapter,
               "--host", "127.0.0.1", "--port", "0", "--model-name", NAME, *args]
        self.p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=dict(os.environ, **(env or {})))
        self.log = []
        self.port = None
        found = threading.Event()

        def read():
            for line in self.p.stderr:
                self.log.append(line)
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(30):
            self.kill()
            raise AssertionError("the server did not start:\n" + "".join(self.log))
        self.url = "http://127.0.0.1:%d" % self.port

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if requests.get(self.url + "/v2/health/ready", timeout=5).status_code == 200:
                return
            time.sleep(0.05)
        raise AssertionError("not ready:\n" + "".join(self.log))

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)


@pytest.fixture
def proc_factory():
    procs = []

    def make(*args, **kw):
        procs.append(Proc(*args, **kw))
        return procs[-1]

    yield make
    for p in procs:
        p.kill()


def slow(proc, seconds, results, session=None):
    try:
        r = (session or requests).post(proc.url + "/v1/models/%s:predict" % NAME,
                                       json={"signature_name": "slow", "instances": [seconds]}, timeout=30)
        results.append((r.status_code, r.headers.get("Connection"), r.json()))
    except requests.RequestException as exc:  # reported, not raised in the thread
        results.append(exc)


def test_live_at_once_ready_after_load_and_warm_up(proc_factory):
    proc = proc_factory(adapter="fake_slow_load", env={"SMENV_FAKE_LOAD_SECONDS": "1.5"})
    assert requests.get(proc.url + "/v2/health/live").status_code == 200
    assert requests.get(proc.url + "/v2/health/ready").status_code == 503
    proc.wait_ready()
    assert requests.get(proc.url + "/v1/models/" + NAME).json()["model_version_status"][0]["state"] == "AVAILABLE"


def test_sigterm_drains_in_flight_requests_then_exits(proc_factory):
    proc = proc_factory()
    proc.wait_ready()
    results = []
    worker = threading.Thread(target=slow, args=(proc, 1.5, results))
    worker.start()
    time.sleep(0.4)  # the slow call is in flight
    started = time.monotonic()
    proc.p.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(requests.ConnectionError):  # no new connection is accepted while draining
        requests.get(proc.url + "/v2/health/live", timeout=2)
    worker.join(30)
    assert proc.p.wait(10) == 0
    assert time.monotonic() - started < 4
    assert results == [(200, "close", {"predictions": [1.5]})]
    assert "drained: every request answered" in "".join(proc.log)


def test_idle_keep_alive_connections_do_not_hold_the_drain(proc_factory):
    proc = proc_factory()
    proc.wait_ready()
    session = requests.Session()
    assert session.get(proc.url + "/v1/models/" + NAME).status_code == 200  # the connection stays open
    started = time.monotonic()
    proc.p.send_signal(signal.SIGTERM)
    assert proc.p.wait(10) == 0
    assert time.monotonic() - started < 2


def test_a_keep_alive_client_gets_its_answer_and_connection_close(proc_factory):
    proc = proc_factory()
    proc.wait_ready()
    session = requests.Session()
    session.get(proc.url + "/v1/models/" + NAME)
    results = []
    worker = threading.Thread(target=slow, args=(proc, 1.0, results, session))
    worker.start()
    time.sleep(0.3)
    proc.p.send_signal(signal.SIGTERM)
    worker.join(30)
    assert results == [(200, "close", {"predictions": [1.0]})]
    assert proc.p.wait(10) == 0


def test_the_drain_has_a_deadline(proc_factory):
    proc = proc_factory("--drain-seconds", "1")
    proc.wait_ready()
    results = []
    threading.Thread(target=slow, args=(proc, 8.0, results), daemon=True).start()
    time.sleep(0.3)
    started = time.monotonic()
    proc.p.send_signal(signal.SIGTERM)
    assert proc.p.wait(10) == 1
    assert time.monotonic() - started < 3
    assert "drain time (1s) is up with 1 request(s) in flight" in "".join(proc.log)


def test_a_second_signal_exits_at_once(proc_factory):
    proc = proc_factory("--drain-seconds", "30")
    proc.wait_ready()
    threading.Thread(target=slow, args=(proc, 8.0, []), daemon=True).start()
    time.sleep(0.3)
    proc.p.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.p.send_signal(signal.SIGINT)
    assert proc.p.wait(5) == 1
