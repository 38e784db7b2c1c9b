"""Run the in-image verifier in a sandboxed container and turn what it says into a Verdict.

The model is loaded and called only inside the container (smenv/runtime/verify.py); this side
starts it with no network, a read-only root, an unprivileged user and limits, reads its JSON
result, and classifies any failure (smenv/verify/diagnose.py).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from smenv.docker.engine import Engine, Sandbox, SandboxRun
from smenv.errors import SmenvError
from smenv.model.facts import H5, KERAS, KERAS_SAVEDMODEL
from smenv.model.inspect import inspect_model
from smenv.runtime.verify import RESULT_PREFIX
from smenv.verify.diagnose import Diagnosis, diagnose

PLAN_IN_IMAGE = "/opt/smenv/smenv.json"
OVERRIDE_DIR = "/opt/smenv/override"


class NotAnSmenvImage(SmenvError):
    exit_code = 6
    kind = "not_an_smenv_image"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    image: str
    result: dict | None  # what the verifier reported from inside the container
    diagnosis: Diagnosis | None
    seconds: float
    timed_out: bool = False
    oom_killed: bool = False
    logs_tail: tuple[str, ...] = field(default=())

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else (self.diagnosis.exit_code if self.diagnosis else 30)

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "image": self.image,
            "exit_code": self.exit_code,
            "container_seconds": self.seconds,
            "result": self.result,
            "diagnosis": self.diagnosis.to_json() if self.diagnosis else None,
            "timed_out": self.timed_out,
            "oom_killed": self.oom_killed,
        }


def image_plan(engine: Engine, image: str) -> dict:
    info = engine.image_info(image)
    if info is None:
        raise NotAnSmenvImage("no such image on the Docker engine", image)
    if "org.smenv.version" not in info.labels:
        raise NotAnSmenvImage("not an image built by smenv (no org.smenv.version label)", image)
    return json.loads(engine.read_file(image, PLAN_IN_IMAGE))


def verify_image(
    engine: Engine,
    image: str,
    sandbox: Sandbox,
    model: Path | None = None,
    sample_input: Path | None = None,
    progress=lambda message: None,
) -> Verdict:
    plan = image_plan(engine, image)
    command = ["python", "/opt/smenv/verify.py"]
    mounts: list[tuple[str, str]] = list(sandbox.mounts)
    staging = Path(tempfile.mkdtemp(prefix="smenv-verify-"))
    try:
        staging.chmod(0o755)
        if model is not None:  # verify another model against this image's environment
            plan, host_path = _plan_for_model(plan, model)
            (staging / "smenv.json").write_text(json.dumps(plan))
            (staging / "smenv.json").chmod(0o644)
            mounts += [(str(host_path), plan["image"]["model_path"]), (str(staging / "smenv.json"), f"{OVERRIDE_DIR}/smenv.json")]
            command += ["--plan", f"{OVERRIDE_DIR}/smenv.json"]
        if sample_input is not None:
            if not sample_input.is_file():
                raise SmenvError("sample input not found", sample_input)
            shutil.copyfile(sample_input, staging / "sample.npz")
            (staging / "sample.npz").chmod(0o644)
            mounts.append((str(staging / "sample.npz"), f"{OVERRIDE_DIR}/sample.npz"))
            command += ["--sample-input", f"{OVERRIDE_DIR}/sample.npz"]
        if sandbox.gpu:
            command.append("--gpu")
        progress(f"loading the model in a sandboxed container of {image}")
        run = engine.run_sandboxed(
            image, command, Sandbox(sandbox.memory, sandbox.timeout_s, sandbox.pids, sandbox.gpu, tuple(mounts))
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _verdict(image, plan, run)


def _verdict(image: str, plan: dict, run: SandboxRun) -> Verdict:
    result = None
    for line in run.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            try:
                result = json.loads(line[len(RESULT_PREFIX):])
            except json.JSONDecodeError:
                result = None
    ok = bool(result and result.get("ok")) and run.exit_code == 0 and not run.timed_out
    diagnosis = None
    if not ok:
        diagnosis = diagnose(
            result, plan, timed_out=run.timed_out, oom_killed=run.oom_killed, exit_code=run.exit_code, logs=run.stderr
        )
    tail = tuple(line for line in run.stderr.splitlines()[-20:] if line.strip())
    return Verdict(ok, image, result, diagnosis, run.seconds, run.timed_out, run.oom_killed, tail)


def _plan_for_model(plan: dict, model: Path) -> tuple[dict, Path]:
    """The image's plan with another model in it, and the host path to mount (read-only)."""
    facts = inspect_model(model)
    root = Path(facts.model_root).resolve()
    plan = json.loads(json.dumps(plan))  # a copy
    plan["model"] = facts.to_json()
    plan["image"]["model_path"] = f"{OVERRIDE_DIR}/model" + ("" if root.is_dir() else f"/{root.name}")
    plan["environment"]["loader"] = "keras" if facts.format in (KERAS, H5, KERAS_SAVEDMODEL) else "saved_model"
    return plan, root
