"""The host side of what verification feeds the model (smenv/verify/inputs.py and the CLI).

- `--sample-input FILE.npz` is checked on the host, for `smenv build` as for `smenv verify`: a missing
  file, a file that is not an .npz, an .npz carrying pickles, or arrays named after no input of the
  model are one line naming the file, exit 2, before any image is built (no Docker needed here).
- A model that loads is never reported as failing because of input smenv made up: that signature is
  "not checked" (which input, what was fed, the error's first line, the advice `--sample-input`) and
  the verdict is OK with notes, exit 0. The user's own sample failing stays exit 31.
The verifier results below are the shapes smenv/runtime/verify.py prints (tests/test_input_hints.py
runs its input-making code itself).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import FIXTURES
from smenv.docker.engine import Sandbox, SandboxRun
from smenv.errors import SampleInputError
from smenv.model.inspect import inspect_model
from smenv.verify.diagnose import diagnose
from smenv.verify.inputs import check_sample_names, input_names, review_calls
from smenv.verify.runner import _verdict, verify_image

MODELS = FIXTURES / "models"


def plan_for(model: Path, loader: str = "keras") -> dict:
    return {
        "model": json.loads(json.dumps(inspect_model(model).to_json())),
        "environment": {"tensorflow_version": "2.15.1", "python": "3.11", "keras_major": 2, "legacy_keras": False,
                        "loader": loader},
        "lock": {"digest": "sha256:0", "packages": {"tensorflow-cpu": "2.15.1", "numpy": "1.26.4"}},
        "image": {"model_path": "/opt/smenv/model", "uid": 10001, "code": [], "imports": []},
    }


# -- --sample-input names --------------------------------------------------------------------------------


def test_names_after_the_inputs_pass(tmp_path):
    model = plan_for(MODELS / "tf215-full.h5")["model"]
    assert input_names(model) == {"x"}
    np.savez(tmp_path / "s.npz", x=np.zeros((1, 4), np.float32))
    check_sample_names(tmp_path / "s.npz", model)


def test_a_name_of_no_input_is_a_usage_error_naming_the_file(tmp_path):
    model = plan_for(MODELS / "tf215-savedmodel", "saved_model")["model"]
    np.savez(tmp_path / "s.npz", x=np.zeros((1, 4), np.float32), inputs=np.zeros(1))
    with pytest.raises(SampleInputError) as info:
        check_sample_names(tmp_path / "s.npz", model)
    assert info.value.exit_code == 2 and info.value.path == str(tmp_path / "s.npz")
    assert "'inputs'" in info.value.message and "its inputs: x" in info.value.message
    assert "\n" not in info.value.message


def test_keras2_sequential_input_names_with_or_without_the_input_suffix(tmp_path):
    model = {"signatures": [{"name": "keras_model", "inputs": [{"name": "embedding_input"}]}]}
    check_sample_names(tmp_path / "unused.npz", model, arrays=["embedding_input"])
    check_sample_names(tmp_path / "unused.npz", model, arrays=["embedding"])
    model = {"signatures": [{"name": "keras_model", "inputs": [{"name": "embedding"}]}]}
    check_sample_names(tmp_path / "unused.npz", model, arrays=["embedding_input"])
    with pytest.raises(SampleInputError):
        check_sample_names(tmp_path / "unused.npz", model, arrays=["tokens"])


def test_a_model_without_recorded_inputs_is_not_checked(tmp_path):
    check_sample_names(tmp_path / "unused.npz", {"signatures": []}, arrays=["anything"])


def run_cli(*args: str) -> subprocess.CompletedProcess:
    # DOCKER_HOST points nowhere: the sample is refused before smenv would ever reach an engine.
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    return subprocess.run([sys.executable, "-m", "smenv", *args], capture_output=True, text=True, timeout=120, env=env)


def pickled(path: Path) -> Path:
    np.savez(path, x=np.array([{"a": 1}], dtype=object))  # savez pickles object arrays
    return path


def named_wrong(path: Path) -> Path:
    np.savez(path, y=np.zeros((1, 4), np.float32))
    return path


SAMPLES = {
    "missing file": (lambda d: d / "nope.npz", "not found"),
    "not an npz": (lambda d: (d / "s.npz").write_text("x,y\n1,2\n") and d / "s.npz", "not an .npz"),
    "pickle-carrying npz": (lambda d: pickled(d / "s.npz"), "Python objects"),
    "names of no input": (lambda d: named_wrong(d / "s.npz"), "match no input"),
}


# `verify` reads the input names from the image's plan, so its wrong-names case is
# test_verify_checks_names_against_the_images_plan below; every other case applies to both commands.
@pytest.mark.parametrize("command, case", [(c, k) for c in ("build", "verify") for k in sorted(SAMPLES)
                                           if (c, k) != ("verify", "names of no input")])
def test_cli_refuses_a_bad_sample_input_in_one_line(tmp_path, case, command):
    make, words = SAMPLES[case]
    sample = make(tmp_path)
    target = str(MODELS / "tf215-full.h5") if command == "build" else "smenv/none:0"
    proc = run_cli(command, target, "--sample-input", str(sample))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("smenv: error: ") and str(sample) in lines[0], proc.stderr
    assert words in lines[0] and "Traceback" not in proc.stderr


class PlanOnlyEngine:
    """An engine that has one smenv image and must never run a container."""

    def __init__(self, plan: dict):
        self.plan = plan

    def image_info(self, ref: str):
        return SimpleNamespace(labels={"org.smenv.version": "0"})

    def read_file(self, image: str, path: str) -> bytes:
        return json.dumps(self.plan).encode()

    def run_sandboxed(self, *args, **kwargs):
        raise AssertionError("a container was started for a sample input that names no input")


def test_verify_checks_names_against_the_images_plan(tmp_path):
    plan = plan_for(MODELS / "tf215-savedmodel", "saved_model")
    sample = named_wrong(tmp_path / "s.npz")
    with pytest.raises(SampleInputError, match="'y' match no input of the model"):
        verify_image(PlanOnlyEngine(plan), "smenv/m:1", Sandbox(), sample_input=sample)


# -- made-up input the model rejects: not checked, exit 0 -------------------------------------------------

EMBEDDING_ERROR = {"type": "InvalidArgumentError",
                   "message": "Exception encountered when calling layer 'embedding' (type Embedding).\n\n"
                              "{{function_node __wrapped__ResourceGather_device_/job:localhost/replica:0/task:0/device:CPU:0}} "
                              "indices[0,2] = -1 is not in [0, 1188) [Op:ResourceGather] name: "}


def keras_result(entry: dict) -> dict:
    return {"ok": True, "stage": "done", "python": "3.11.9", "tensorflow": "2.15.1", "keras": "2.15.0",
            "timings": {"import_tensorflow_s": 2.0, "load_s": 0.5}, "signatures": [entry]}


def made_up_failure(**extra) -> dict:
    return {"name": "keras_model", "primary": True, "synthetic": True, "checked": False, "fatal": False, "outputs": [],
            "inputs": [{"name": "x", "dtype": "float32", "shape": [1, 4], "synthetic": True, "fed": "float32[1, 4] standard normal"}],
            "error": EMBEDDING_ERROR, **extra}


def run(result: dict | None, exit_code: int = 0) -> SandboxRun:
    stdout = "SMENV_RESULT " + json.dumps(result) + "\n" if result is not None else ""
    return SandboxRun(exit_code=exit_code, stdout=stdout, stderr="smenv-verify: ...\n", seconds=3.0, timed_out=False, oom_killed=False)


def test_made_up_input_rejected_is_ok_with_a_note():
    plan = plan_for(MODELS / "tf215-full.h5")
    verdict = _verdict("smenv/m:1", plan, run(keras_result(made_up_failure())), False)
    assert verdict.ok and verdict.exit_code == 0 and verdict.diagnosis is None
    (note,) = verdict.not_checked
    assert note.signature == "keras_model"
    assert "made-up input" in note.reason and "InvalidArgumentError: Exception encountered when calling layer 'embedding' (type Embedding): indices[0,2] = -1 is not in [0, 1188) [Op:ResourceGather]" in note.reason
    assert "x: float32[1, 4] standard normal" in note.reason
    assert "--sample-input" in note.advice
    data = verdict.to_json()
    assert data["exit_code"] == 0 and data["not_checked"] == [note.to_json()]


def test_the_note_names_the_input_the_error_names_and_the_lengths_tried():
    entry = made_up_failure(lengths_tried=[9, 32, 128], inputs=[
        {"name": "signal", "synthetic": True, "fed": "float32[1, 128, 8] standard normal"},
        {"name": "mask", "synthetic": True, "fed": "bool[1, 128] False"},
    ], error={"type": "ValueError", "message": "Input 0 of layer 'crop' (signal) is incompatible\nmore"})
    (note,) = review_calls(keras_result(entry), plan_for(MODELS / "tf215-full.h5"), False).not_checked
    assert note.reason.endswith("(fed signal: float32[1, 128, 8] standard normal; lengths 9, 32, 128 tried)")
    assert "mask" not in note.reason and "more" not in note.reason


def test_an_older_verifier_that_stopped_on_made_up_input_is_reviewed_the_same():
    # Images built before made-up input was reported: the verifier raised and exited 1 at stage "call".
    result = {"ok": False, "stage": "call", "python": "3.11.9", "timings": {}, "signatures": [],
              "error": {**EMBEDDING_ERROR, "module": "tensorflow.python.framework.errors_impl", "traceback": "Traceback ..."}}
    plan = plan_for(MODELS / "tf215-full.h5")
    verdict = _verdict("smenv/m:1", plan, run(result, exit_code=1), False)
    assert verdict.ok and verdict.exit_code == 0
    assert verdict.not_checked[0].signature == "keras_model" and "InvalidArgumentError" in verdict.not_checked[0].reason
    # ... but with the user's own sample, the same failure is a failure: call_failed, exit 31.
    verdict = _verdict("smenv/m:1", plan, run(result, exit_code=1), True)
    assert not verdict.ok and verdict.exit_code == 31 and verdict.diagnosis.kind == "call_failed"


def test_the_users_sample_rejected_is_exit_31():
    # The new verifier stops (raises) when the input was all the user's: stage "call", the entry `fatal`.
    entry = {**made_up_failure(), "synthetic": False, "fatal": True,
             "inputs": [{"name": "x", "synthetic": False, "fed": "float64[3, 4] the sample's array"}]}
    result = {**keras_result(entry), "ok": False, "stage": "call",
              "error": {**EMBEDDING_ERROR, "module": "tensorflow.python.framework.errors_impl", "traceback": ""}}
    verdict = _verdict("smenv/m:1", plan_for(MODELS / "tf215-full.h5"), run(result, exit_code=1), True)
    assert verdict.exit_code == 31 and verdict.not_checked == ()
    assert "your --sample-input" in verdict.diagnosis.fix and verdict.diagnosis.details["signature"] == "keras_model"


def test_an_environment_error_during_a_made_up_call_is_still_a_failure():
    entry = made_up_failure(error={"type": "ModuleNotFoundError", "message": "No module named 'tensorflow_text'"})
    verdict = _verdict("smenv/m:1", plan_for(MODELS / "tf215-full.h5"), run(keras_result(entry)), False)
    assert not verdict.ok and verdict.diagnosis.kind == "missing_module" and verdict.exit_code == 23


def test_secondary_signatures_not_checked_and_primary_answered():
    plan = plan_for(MODELS / "tf215-savedmodel", "saved_model")
    primary = {"name": "serving_default", "primary": True, "synthetic": True, "seconds": 0.01,
               "inputs": [{"name": "x", "synthetic": True, "fed": "float32[1, 4] standard normal"}],
               "outputs": [{"name": "y", "dtype": "float32", "shape": [1, 1]}]}
    example = {"name": "classify_x_to_y", "primary": False, "synthetic": True, "checked": False, "outputs": [],
               "inputs": [{"name": "inputs", "synthetic": True, "fed": "string[1] empty serialised tf.Example"}],
               "error": {"type": "InvalidArgumentError", "message": "Feature: x (data type: float) is required but could not be found."}}
    no_input = {"name": "w", "primary": False, "synthetic": False, "inputs": [], "outputs": [],
                "error": {"type": "FailedPreconditionError", "message": "Could not find variable w"}}
    result = {"ok": True, "stage": "done", "python": "3.11.9", "timings": {}, "signatures": [primary, example, no_input]}
    verdict = _verdict("smenv/m:1", plan, run(result), False)
    assert verdict.ok and [n.signature for n in verdict.not_checked] == ["classify_x_to_y", "w"]
    assert "inputs: string[1] empty serialised tf.Example" in verdict.not_checked[0].reason
    assert "with no input" in verdict.not_checked[1].reason and "--sample-input" not in verdict.not_checked[1].advice


def test_a_verifier_result_without_notes_is_unchanged():
    result = keras_result({"name": "keras_model", "primary": True, "seconds": 0.1, "inputs": [], "outputs": []})
    review = review_calls(result, plan_for(MODELS / "tf215-full.h5"), False)
    assert review.result is result and review.not_checked == () and not review.excused_exit
    assert review_calls(None, {}, False).result is None


def test_diagnose_keeps_the_synthetic_advice_for_older_results():
    result = {"ok": False, "stage": "call", "signatures": [{"name": "serving_default", "primary": True, "error": EMBEDDING_ERROR}],
              "error": {"type": "RuntimeError", "message": "signature serving_default failed: ..."}}
    d = diagnose(result, plan_for(MODELS / "tf215-savedmodel", "saved_model"))
    assert d.kind == "call_failed" and "--sample-input" in d.fix and "synthetic" in d.fix


# -- load_keras_model: --unsafe-deserialization reaches keras.models.load_model ------------------------


class _Keras3:
    """The parts of Keras 3 that load_keras_model touches: load_model with safe_mode, keras.config."""

    def __init__(self):
        self.calls, self.unsafe = [], False
        self.models = SimpleNamespace(load_model=self.load_model)
        self.config = SimpleNamespace(enable_unsafe_deserialization=self.enable)

    def load_model(self, filepath, custom_objects=None, compile=True, safe_mode=True):
        self.calls.append({"compile": compile, "safe_mode": safe_mode})
        return "model"

    def enable(self):
        self.unsafe = True


def _plan(safe_mode=None):
    environment = {"loader": "keras"} if safe_mode is None else {"loader": "keras", "keras_safe_mode": safe_mode}
    return {"environment": environment}


def test_safe_mode_stays_on_unless_the_plan_turns_it_off():
    from smenv.runtime.verify import load_keras_model

    keras = _Keras3()
    assert load_keras_model(keras, "/m.keras", _plan()) == "model"
    assert keras.calls == [{"compile": False, "safe_mode": True}] and not keras.unsafe
    load_keras_model(keras, "/m.keras", _plan(False))
    assert keras.calls[-1] == {"compile": False, "safe_mode": False} and keras.unsafe


def test_a_keras_without_safe_mode_is_called_without_it():
    from smenv.runtime.verify import load_keras_model

    calls = []

    def load_model(filepath, custom_objects=None, compile=True):  # tf.keras before 2.13: no safe_mode keyword
        calls.append(compile)
        return "model"

    old_keras = SimpleNamespace(models=SimpleNamespace(load_model=load_model))
    assert load_keras_model(old_keras, "/m.h5", _plan(False)) == "model" and calls == [False]


def test_a_model_builder_is_called_and_the_weights_read_into_its_model(monkeypatch):
    """--model-builder: the function from the user's module builds the model; load_model is not used."""
    import types

    from smenv.runtime.verify import load_keras_model

    read = []

    class Model:
        def load_weights(self, path):
            read.append(path)

    module = types.ModuleType("user_builders")
    module.build = Model
    module.not_a_model = lambda: "a string"
    monkeypatch.setitem(sys.modules, "user_builders", module)
    keras = _Keras3()
    plan = {"environment": {"loader": "keras", "model_builder": "user_builders:build"}}
    assert isinstance(load_keras_model(keras, "/opt/smenv/model/w.h5", plan), Model)
    assert read == ["/opt/smenv/model/w.h5"] and keras.calls == []
    plan["environment"]["model_builder"] = "user_builders:not_a_model"
    with pytest.raises(TypeError, match="returned str, not a Keras model"):
        load_keras_model(keras, "/w.h5", plan)
