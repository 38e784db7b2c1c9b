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
from typing import Mapping

from smenv.docker.engine import Engine, Sandbox, SandboxRun
from smenv.errors import SmenvError, first_line
from smenv.model.facts import H5, KERAS, KERAS_SAVEDMODEL
from smenv.model.inspect import inspect_model
from smenv.runtime.verify import RESULT_PREFIX
from smenv.verify.diagnose import Diagnosis, diagnose
from smenv.verify.inputs import NotChecked, check_sample_names, review_calls
from smenv.verify.sample import check_sample_input
from smenv.verify.serving import ServeCheck

PLAN_IN_IMAGE = "/opt/smenv/smenv.json"
SERVE_FAILED = 32  # the model loads, but the image's own command does not serve it (smenv/verify/serving.py)
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
    not_checked: tuple[NotChecked, ...] = ()  # signatures the model rejected made-up input for (smenv/verify/inputs.py)
    serve: ServeCheck | None = None  # the image run as deployed (smenv build); None when not checked

    @property
    def exit_code(self) -> int:
        if self.ok:
            return 0
        if self.diagnosis:
            return self.diagnosis.exit_code
        return SERVE_FAILED if self.serve is not None and not self.serve.ok else 30

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
            "not_checked": [n.to_json() for n in self.not_checked],
            "load": {"ok": bool(self.result and self.result.get("ok")), "container_seconds": self.seconds},
            "serve": self.serve.to_json() if self.serve else None,
        }


def image_plan(engine: Engine, image: str) -> dict:
    info = engine.image_info(image)
    if info is None:
        raise NotAnSmenvImage("no such image on the Docker engine", image)
    check_labels(image, info.labels)
    return read_plan(image, engine.read_file(image, PLAN_IN_IMAGE))


# An image only claims to be an smenv image: its labels, its smenv.json and what its verifier prints are
# read as hostile input (tools/fuzz.py fuzzes the three functions below). Only the shape of the fields
# the host reads back is checked (here, smenv/verify/diagnose.py, smenv/console.py); every one may be
# null or absent (a dry-run plan has no lock), and anything else in the file is left as it is.
class _OrNull:
    """A field that may be null even where nulls do not count as absent."""

    def __init__(self, shape):
        self.shape = shape


_PLAN_SHAPE = {
    "model": {"tensorflow_version": str, "keras_version": str, "size_bytes": (int, float),
              "custom_objects": [{"class_name": str, "module": str, "registered_name": str, "kind": str}]},
    "environment": {"tensorflow_version": str, "python": str, "legacy_keras": (bool, int), "keras_major": int,
                    "loader": str},
    "image": {"model_path": str, "code": [str], "imports": [str]},
    "lock": {"packages": {str: str}},
}
_RESULT_SHAPE = {
    "ok": bool, "stage": str, "python": str, "tensorflow": str, "keras": str, "numpy": str,
    "timings": {str: (int, float)}, "gpus": [str],
    "error": {"type": str, "module": str, "message": str, "traceback": str},
    "signatures": [{"name": str, "primary": bool, "seconds": (int, float),
                    "error": {"type": str, "message": str},
                    "outputs": [{"name": str, "dtype": str, "shape": _OrNull([(int, type(None))])}]}],  # null: unknown rank
}
# Keys the console reads with [] (a missing one would be a KeyError), by the dict that holds them.
_RESULT_REQUIRED = {"signature": ("name",), "signature error": ("type",), "output": ("name", "dtype", "shape")}
# The console reads the result's objects and lists with .get(key, default), so there a null is not "absent";
# the verifier writes none (tests/fuzz_crashes/verifier-output).


def check_labels(image: str, labels: Mapping[str, str]) -> None:
    if "org.smenv.version" not in labels:
        raise NotAnSmenvImage("not an image built by smenv (no org.smenv.version label)", image)


def read_plan(image: str, data: bytes) -> dict:
    """smenv.json as read back from an image; NotAnSmenvImage when it is not one smenv wrote."""
    where = f"{PLAN_IN_IMAGE} in the image"
    try:
        plan = json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits, nesting
        raise NotAnSmenvImage(f"{where} is not valid JSON ({first_line(exc)})", image) from None
    if not isinstance(plan, dict):
        raise NotAnSmenvImage(f"{where} is not a JSON object", image)
    for section in ("model", "environment", "image"):
        if not isinstance(plan.get(section), dict):
            raise NotAnSmenvImage(f"{where} has no {section!r} object: not a plan smenv wrote", image)
    bad = _misfit(plan, _PLAN_SHAPE)
    if bad:
        raise NotAnSmenvImage(f"{where} is not a plan smenv wrote ({bad} has the wrong type)", image)
    return plan


def read_result(stdout: str) -> dict | None:
    """The verifier's JSON result line; None when there is none, or none of the shape the verifier writes."""
    result = None
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            try:
                result = json.loads(line[len(RESULT_PREFIX):])
            except (ValueError, RecursionError):
                result = None
    if not isinstance(result, dict) or _misfit(result, _RESULT_SHAPE, nulls=False):
        return None
    for sig in result.get("signatures") or []:
        if not (sig and _has(sig, "signature") and (not sig.get("error") or _has(sig["error"], "signature error"))
                and all(o and _has(o, "output") for o in sig.get("outputs") or [])):
            return None
    return result


def _has(value: dict, what: str) -> bool:
    return all(k in value for k in _RESULT_REQUIRED[what])


def _misfit(value, shape, where: str = "", nulls: bool = True) -> str | None:
    """The first field of `value` that does not have `shape`, else None. A null field is as good as an absent
    one, except, with `nulls=False`, where an object or a list belongs."""
    if isinstance(shape, _OrNull):
        if value is None:
            return None
        shape = shape.shape
    if value is None:
        return where if not nulls and isinstance(shape, (dict, list)) else None
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return where or "the top level"
        if str in shape:  # a mapping of names
            return next((f"{where}[{k!r}]" for k, v in value.items()
                         if not isinstance(k, str) or _misfit(v, shape[str], "", nulls) is not None), None)
        return next((bad for k, s in shape.items()
                     if k in value and (bad := _misfit(value[k], s, f"{where}.{k}".lstrip("."), nulls)) is not None), None)
    if isinstance(shape, list):
        if not isinstance(value, list):
            return where
        nullable = isinstance(shape[0], tuple) and type(None) in shape[0]  # e.g. a dimension of unknown size
        for i, v in enumerate(value):  # else an item is never null: the readers take each one as it is
            bad = (None if nullable else f"{where}[{i}]") if v is None else _misfit(v, shape[0], f"{where}[{i}]", nulls)
            if bad is not None:
                return bad
        return None
    return None if isinstance(value, shape) else where


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
            check_sample_input(sample_input)
            check_sample_names(sample_input, plan.get("model") or {})
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
    return _verdict(image, plan, run, sample_input is not None)


def _verdict(image: str, plan: dict, run: SandboxRun, sample_given: bool = False) -> Verdict:
    result = read_result(run.stdout)
    review = review_calls(result, plan, sample_given)  # made-up input the model rejected: not checked, not failed
    result = review.result
    ok = bool(result and result.get("ok")) and (run.exit_code == 0 or review.excused_exit) and not run.timed_out
    diagnosis = None
    if not ok:
        diagnosis = diagnose(
            result, plan, timed_out=run.timed_out, oom_killed=run.oom_killed, exit_code=run.exit_code, logs=run.stderr
        )
    tail = tuple(line for line in run.stderr.splitlines()[-20:] if line.strip())
    return Verdict(ok, image, result, diagnosis, run.seconds, run.timed_out, run.oom_killed, tail, review.not_checked)


def _plan_for_model(plan: dict, model: Path) -> tuple[dict, Path]:
    """The image's plan with another model in it, and the host path to mount (read-only)."""
    facts = inspect_model(model)
    root = Path(facts.model_root).resolve()
    plan = json.loads(json.dumps(plan))  # a copy
    plan["model"] = facts.to_json()
    plan["image"]["model_path"] = f"{OVERRIDE_DIR}/model" + ("" if root.is_dir() else f"/{root.name}")
    plan["environment"]["loader"] = "keras" if facts.format in (KERAS, H5, KERAS_SAVEDMODEL) else "saved_model"
    if not facts.weights_only:  # the image's --model-builder is for weights; a whole model loads by itself
        plan["environment"].pop("model_builder", None)
    return plan, root
