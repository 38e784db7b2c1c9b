"""Verified as deployed: the image's own command, hardened as in production, answers through its API.

After the verifier has loaded the model and called each signature (runner.py), `check_serving` starts
the image as `docker run` would in production (Engine.start_service: its CMD, its non-root user, a
read-only root with a tmpfs /tmp, no capabilities, no network), waits until the server says it is
ready (the probe the HEALTHCHECK runs, sent with `docker exec` to 127.0.0.1 inside the container, so
no port is published and the container has no route out), sends one prediction built from the
default signature (or --sample-input) through TensorFlow Serving's REST API, checks the Open Inference
Protocol's model-ready endpoint, and stops it with SIGTERM, which must drain and exit 0.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from smenv.docker.engine import Sandbox
from smenv.render.runtime_files import PROBE
from smenv.runtime.serve.probe import RESULT_PREFIX

POLL_SECONDS = 1.0  # between readiness probes; each is a `docker exec` of a small Python
STOP_SECONDS = 10  # docker stop's default grace period; the server drains within SMENV_DRAIN_SECONDS (8)
SAMPLE_IN_CONTAINER = "/opt/smenv/override/sample.npz"


@dataclass(frozen=True)
class ServeCheck:
    ok: bool
    ready_seconds: float | None  # from start to the first ready probe; None if it never was
    result: dict | None  # what the probe's prediction reported (serve/probe.py)
    stop_exit_code: int | None  # after SIGTERM: 0 when it drained
    stop_seconds: float | None
    error: str | None = None  # why it is not ok, in one line
    logs_tail: tuple[str, ...] = field(default=())

    def to_json(self) -> dict:
        return {"ok": self.ok, "ready_seconds": self.ready_seconds, "result": self.result,
                "stop_exit_code": self.stop_exit_code, "stop_seconds": self.stop_seconds, "error": self.error,
                "logs_tail": list(self.logs_tail)}


def check_serving(engine, image: str, sandbox: Sandbox, sample_input: Path | None = None,
                  progress=lambda message: None) -> ServeCheck:
    mounts = list(sandbox.mounts)
    if sample_input is not None:
        mounts.append((str(Path(sample_input).resolve()), SAMPLE_IN_CONTAINER))
    hardened = Sandbox(sandbox.memory, sandbox.timeout_s, sandbox.pids, sandbox.gpu, tuple(mounts))
    progress(f"serving: starting {image} with its own command (read-only, no network)")
    started = time.monotonic()
    with engine.start_service(image, hardened) as service:
        ready_at, why = _wait_ready(service, started, sandbox.timeout_s, progress)
        if ready_at is None:
            return ServeCheck(False, None, None, None, None, why, _tail(service.logs()))
        command = [*PROBE, "--predict"] + (["--sample-input", SAMPLE_IN_CONTAINER] if sample_input else [])
        progress("serving: sending a prediction through the served API")
        _, output = service.exec(command)
        result = _result(output)
        stopping = time.monotonic()
        code = service.stop(STOP_SECONDS)
        stop_seconds = round(time.monotonic() - stopping, 2)
        logs = _tail(service.logs())
    ok, error = True, None
    if result is None:
        ok, error = False, "the probe printed no result: " + (output.strip().splitlines() or ["nothing"])[-1][:300]
    elif not result.get("ok"):
        status = result.get("status")
        refused = f"the served API answered {status or 'nothing'}: {str(result.get('error') or '')[:300]}".strip()
        if isinstance(status, int) and 400 <= status < 500 and sample_input is None:
            # The model rejected made-up input, as the verifier reports "not checked": said, not failed.
            result = {**result, "not_checked": f"{refused}; give real input with --sample-input FILE.npz"}
        else:
            ok, error = False, refused
    elif code != 0:
        ok, error = False, f"after SIGTERM the server exited {code} in {stop_seconds} s instead of draining and exiting 0"
    return ServeCheck(ok, round(ready_at - started, 2), result, code, stop_seconds, error, logs)


def _wait_ready(service, started: float, limit: float, progress) -> tuple[float | None, str]:
    said = started
    last = ""
    while True:
        state = service.state()
        if not state.get("Running"):
            killed = " (killed at its memory limit)" if state.get("OOMKilled") else ""
            return None, f"the server exited with code {state.get('ExitCode')}{killed} before it was ready"
        code, output = service.exec(list(PROBE))
        now = time.monotonic()
        if code == 0:
            return now, ""
        last = output.strip().splitlines()[-1] if output.strip() else f"probe exit {code}"
        failed = [line for line in service.logs().splitlines() if "the model did not load:" in line]
        if failed:  # the server keeps running to answer 503s; waiting longer changes nothing
            return None, failed[-1].split("smenv-serve: ", 1)[-1][:400]
        if now - started > limit:
            return None, f"not ready within {limit:.0f} s ({last})"
        if now - said >= 10:
            progress(f"serving: waiting for the model to load and warm up ({now - started:.0f} s)")
            said = now
        time.sleep(POLL_SECONDS)


def _result(output: str) -> dict | None:
    for line in reversed(output.splitlines()):
        if line.startswith(RESULT_PREFIX):
            try:
                value = json.loads(line[len(RESULT_PREFIX):])
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _tail(logs: str) -> tuple[str, ...]:
    return tuple(line for line in logs.splitlines()[-20:] if line.strip())
