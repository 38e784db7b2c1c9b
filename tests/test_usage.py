"""A user's requirements and options: a range that admits the model's release is no conflict, a mistyped
option is a usage error (exit 2, one line), and the default output never lands inside the model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import FIXTURES
from smenv.env.requirements import parse_requirements
from smenv.env.resolve import ResolveOptions, resolve
from smenv.errors import UsageError
from smenv.model.inspect import inspect_model
from smenv.render.context import default_output

MODELS = FIXTURES / "models"


def keras28_h5():
    """tf215-full.h5 as if Keras 2.8 had written it (.h5 records only the Keras version)."""
    return replace(inspect_model(MODELS / "tf215-full.h5"), keras_version="2.8.0")


def plan_with(facts, requirements: str, tmp_path: Path, **opts):
    path = tmp_path / "requirements.txt"
    path.write_text(requirements)
    return resolve(facts, parse_requirements(path), ResolveOptions(**opts))


def test_a_range_that_admits_the_models_release_keeps_it(tmp_path):
    plan = plan_with(keras28_h5(), "tensorflow>=2.0\n", tmp_path)
    assert plan.tensorflow_version == "2.8.4" and not plan.legacy_keras
    tf = next(d for d in plan.decisions if d.topic == "tensorflow")
    assert "pins it" not in tf.reason and "Keras 2.8.0" in tf.reason
    assert not [d for d in plan.decisions if d.topic.startswith("requirement:")]  # no conflict reported


def test_a_range_that_excludes_the_models_release_takes_the_nearest_reader_it_admits(tmp_path):
    plan = plan_with(keras28_h5(), "tensorflow>=2.10,<2.13\n", tmp_path)
    assert plan.tensorflow_version == "2.10.1"  # the oldest admitted minor, its newest patch
    reason = next(d for d in plan.decisions if d.topic == "tensorflow").reason
    assert "requirements.txt:1 asks for tensorflow<2.13,>=2.10, which excludes TensorFlow 2.8.4" in reason


def test_an_exact_pin_of_a_newer_release_is_used_through_tf_keras(tmp_path):
    plan = plan_with(keras28_h5(), "tensorflow==2.16.2\n", tmp_path)
    assert plan.tensorflow_version == "2.16.2" and plan.legacy_keras


def test_only_a_real_conflict_is_reported_and_the_model_wins(tmp_path):
    plan = plan_with(keras28_h5(), "tensorflow<2.5\n", tmp_path)  # no release it admits reads Keras 2.8 files
    assert plan.tensorflow_version == "2.8.4"
    warn = next(d for d in plan.decisions if d.topic == "requirement:tensorflow")
    assert warn.level == "warning" and "tensorflow<2.5" in warn.reason and "2.8.4" in warn.reason


def test_a_range_that_admits_the_producer_release_is_silent(tmp_path):
    plan = plan_with(inspect_model(MODELS / "tf215-savedmodel"), "tensorflow>=2.0\n", tmp_path)
    assert plan.tensorflow_version == "2.15.1"
    assert not [d for d in plan.decisions if d.topic.startswith("requirement:")]


def test_tf_version_minor_means_its_newest_patch():
    plan = resolve(inspect_model(MODELS / "tf215-savedmodel"), None, ResolveOptions(tf_version="2.10"))
    assert plan.tensorflow_version == "2.10.1"
    assert "newest patch" in next(d for d in plan.decisions if d.topic == "tensorflow").reason


@pytest.mark.parametrize(
    "opts, words",
    [
        ({"python": "3.x"}, "--python '3.x': expected"),
        ({"python": "python3.11"}, "--python 'python3.11': expected"),
        ({"python": "3.13"}, "--python 3.13: TensorFlow 2.15.1 has no wheels for Python 3.13"),
        ({"as_of": "yesterday"}, "--as-of 'yesterday': expected a date"),
        ({"as_of": "2024-13-45"}, "--as-of '2024-13-45'"),
        ({"tf_version": "latest"}, "--tf-version 'latest': expected"),
    ],
)
def test_mistyped_options_are_usage_errors(opts, words):
    with pytest.raises(UsageError, match=words.replace("(", r"\(").replace(".", r"\.")):
        resolve(inspect_model(MODELS / "tf215-savedmodel"), None, ResolveOptions(**opts))


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_COLOR="1", DOCKER_HOST="unix:///nonexistent/docker.sock")
    return subprocess.run([sys.executable, "-m", "smenv", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)


def test_a_mistyped_option_is_exit_2_before_the_engine_is_asked(tmp_path):
    """`build` connects to the engine first; a wrong --as-of must not be reported as a Docker error."""
    proc = run_cli(["build", str(MODELS / "tf215-savedmodel"), "--as-of", "2024/06/01"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "smenv: error: --as-of '2024/06/01': expected a date (YYYY-MM-DD) or an ISO 8601 time (2024-03-08T12:00:00Z)"
    ]


def test_default_output_moves_beside_the_model_when_run_inside_it(tmp_path):
    model = tmp_path / "mymodel"
    shutil.copytree(MODELS / "tf215-savedmodel", model)
    assert default_output(Path("."), cwd=model) == tmp_path / "mymodel-smenv-build"
    assert default_output(model, cwd=tmp_path) == Path("smenv-build")  # the usual case is unchanged
    assert default_output(MODELS / "tf215-full.h5", cwd=MODELS) == Path("smenv-build")  # a file model


def test_generate_dot_inside_the_model_writes_beside_it(tmp_path):
    model = tmp_path / "mymodel"
    shutil.copytree(MODELS / "tf215-savedmodel", model)
    before = sorted(p.name for p in model.rglob("*"))
    proc = run_cli(["generate", "."], model)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "mymodel-smenv-build"
    assert (out / "Dockerfile").is_file() and (out / "payload" / "model" / "saved_model.pb").is_file()
    assert sorted(p.name for p in model.rglob("*")) == before  # nothing written into the model
    assert str(out) in proc.stdout


def test_an_explicit_output_inside_the_model_is_refused_and_nothing_is_written(tmp_path):
    model = tmp_path / "mymodel"
    shutil.copytree(MODELS / "tf215-savedmodel", model)
    before = sorted(p.name for p in model.rglob("*"))
    proc = run_cli(["generate", ".", "-o", "ctx"], model)
    assert proc.returncode == 9, proc.stderr
    assert "is inside the model directory" in proc.stderr and len(proc.stderr.strip().splitlines()) >= 1
    assert sorted(p.name for p in model.rglob("*")) == before


def test_base_with_a_mistyped_python_is_exit_2_before_the_engine_is_asked(tmp_path):
    proc = run_cli(["base", "--python", "3.x"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == ["smenv: error: --python '3.x': expected a CPython minor version such as 3.11"]


def test_build_context_inside_the_model_is_refused_before_the_engine_is_asked(tmp_path):
    model = tmp_path / "mymodel"
    shutil.copytree(MODELS / "tf215-savedmodel", model)
    proc = run_cli(["build", ".", "--context", "ctx"], model)
    assert proc.returncode == 9, proc.stderr
    assert "ctx: is inside the model directory" in proc.stderr and "Docker engine" not in proc.stderr
    assert not (model / "ctx").exists()


def test_a_misnamed_model_builder_is_exit_2_before_the_engine_is_asked(tmp_path):
    """The function is looked up in the --code module's source on the host (not run), before any build."""
    weights, builders = MODELS / "tf215-weights.h5", FIXTURES / "usercode" / "smenv_fixture_builders.py"
    proc = run_cli(["build", str(weights), "--code", str(builders), "--model-builder", "smenv_fixture_builders:nope"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"smenv: error: {builders}: --model-builder smenv_fixture_builders:nope: the module defines no top-level nope"]
    image = run_cli(["serve", "smenv/some-model:1", "--model-builder", "m:build"], tmp_path)
    assert image.returncode == 2 and "applies when serve builds a model" in image.stderr, image.stderr


@pytest.mark.parametrize("name", ["serve.py", "verify.py", "serve"])
def test_code_named_like_the_images_runtime_is_refused(tmp_path, name):
    """/opt/smenv (verify.py, serve/) comes first on the image's PYTHONPATH: such a module would never load."""
    code = tmp_path / name
    if name.endswith(".py"):
        code.write_text("X = 1\n")
    else:
        code.mkdir()
    proc = run_cli(["generate", str(MODELS / "tf215-savedmodel"), "--code", str(code), "--dry-run"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"smenv: error: {code}: --code: the image's own")
