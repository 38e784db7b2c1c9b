"""`generate` and `build` warn, before locking or building, about load failures the model files foretell."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from conftest import FIXTURES
from smenv import pipeline
from smenv.env.resolve import ResolveOptions
from smenv.model.facts import CustomObject
from smenv.model.inspect import inspect_model
from smenv.model.load_risks import foresee

MODELS = FIXTURES / "models"
LAYERS = FIXTURES / "usercode" / "smenv_fixture_layers.py"


def kinds(risks) -> list[str]:
    return [r.kind for r in risks]


def test_a_custom_class_without_its_module_is_named_with_the_fix():
    facts = inspect_model(MODELS / "tf215-custom-layer.keras")
    (risk,) = foresee(facts, (), "3.11")
    assert risk.kind == "custom-code"
    assert "ScaleShift (module smenv_fixture_layers)" in risk.message
    assert "--code path/to/smenv_fixture_layers" in risk.message
    assert foresee(facts, (LAYERS,), "3.11") == ()  # given as a file
    assert foresee(facts, (LAYERS.parent / "smenv_fixture_layers",), "3.11") == ()  # or as a package directory


def test_a_module_of_another_name_does_not_count():
    facts = inspect_model(MODELS / "tf218-keras3-custom.keras")  # module smenv_fixture_layers_k3
    assert kinds(foresee(facts, (LAYERS,), "3.12")) == ["custom-code"]


def test_a_class_whose_module_is_not_recorded_warns_only_without_any_code():
    facts = inspect_model(MODELS / "tf215-custom-layer.h5")  # legacy HDF5 records the bare class name
    (risk,) = foresee(facts, (), "3.11")
    assert "ScaleShift (module not recorded)" in risk.message
    assert foresee(facts, (LAYERS,), "3.11") == ()


def test_companion_classes_come_with_their_package():
    facts = inspect_model(MODELS / "tf215-savedmodel")
    hub = CustomObject("KerasLayer", "tensorflow_hub.keras_layer", None, "class")
    assert foresee(replace(facts, custom_objects=(hub,)), (), "3.11") == ()


def test_a_savedmodel_without_its_variables_directory(tmp_path):
    model = tmp_path / "export"
    shutil.copytree(MODELS / "tf215-savedmodel", model)
    assert foresee(inspect_model(model), (), "3.11") == ()
    shutil.rmtree(model / "variables")
    (risk,) = foresee(inspect_model(model), (), "3.11")
    assert risk.kind == "missing-variables"
    assert "2 VarHandleOp node(s)" in risk.message and "export/ has no variables/ directory" in risk.message


def test_a_lambda_layer_names_the_python_the_image_uses():
    risk, refused = foresee(inspect_model(MODELS / "tf218-keras3-lambda.keras"), (), "3.12")
    assert risk.kind == "lambda-python"
    assert "1 Lambda layer(s)" in risk.message and "the image uses Python 3.12" in risk.message
    assert "--python" in risk.message
    # A .keras archive: safe mode refuses the bytecode outright, and the warning says what lifts it.
    assert refused.kind == "lambda-safe-mode"
    assert "exit 27" in refused.message and "--unsafe-deserialization" in refused.message


def test_with_safe_mode_off_only_the_python_risk_remains():
    (risk,) = foresee(inspect_model(MODELS / "tf218-keras3-lambda.keras"), (), "3.11", safe_mode=False)
    assert risk.kind == "lambda-python"


def test_the_warnings_are_in_the_plan_notes_of_a_dry_run():
    progress: list[str] = []
    result = pipeline.generate(pipeline.ModelInput(MODELS / "tf215-custom-layer.keras"), None, ResolveOptions(), None,
                               dry_run=True, progress=progress.append)
    assert [n for n in result.notes if n.startswith("warning: the model uses custom code")]
    assert result.plan_json["notes"] == list(result.notes)
    assert progress.index(next(p for p in progress if p.startswith("warning:"))) == 1  # right after reading


def test_generate_warns_on_stderr_before_locking_and_in_the_json(tmp_path):
    model = tmp_path / "export"
    shutil.copytree(MODELS / "tf215-savedmodel", model)
    shutil.rmtree(model / "variables")
    env = dict(os.environ, NO_COLOR="1", DOCKER_HOST="unix:///nonexistent/docker.sock")
    proc = subprocess.run([sys.executable, "-m", "smenv", "generate", str(model), "-o", str(tmp_path / "ctx"), "--json"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    warning = next(i for i, line in enumerate(lines) if line.startswith("smenv: warning: the graph creates variables"))
    assert warning < next(i for i, line in enumerate(lines) if "locking" in line)
    notes = json.loads(proc.stdout)["notes"]
    assert any(n.startswith("warning: the graph creates variables") for n in notes)
    written = json.loads((tmp_path / "ctx" / "smenv.json").read_text())
    assert written["notes"] == notes  # and in the plan the image carries
