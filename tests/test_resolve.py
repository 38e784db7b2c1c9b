"""Resolution: the model is the authority, every decision has a reason, conflicts are named."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from conftest import CORPUS, FIXTURES
from smenv.env import releases
from smenv.env.bases import BaseAvailability
from smenv.env.requirements import parse_requirements
from smenv.env.resolve import ResolutionError, ResolveOptions, choose_base_image, resolve
from smenv.errors import UsageError, WeightsOnly
from smenv.model.builder import ModelBuilder
from smenv.model.inspect import inspect_model

MODELS = FIXTURES / "models"


def plan_for(model: Path, requirements: str | None = None, tmp_path: Path | None = None, **opts):
    reqs = None
    if requirements is not None:
        p = tmp_path / "requirements.txt"
        p.write_text(requirements)
        reqs = parse_requirements(p)
    return resolve(inspect_model(model), reqs, ResolveOptions(**opts))


def decision(plan, topic):
    return next(d for d in plan.decisions if d.topic == topic)


def test_savedmodel_cpu_plan():
    plan = plan_for(MODELS / "tf215-savedmodel")
    assert plan.tensorflow_version == "2.15.1" and plan.tensorflow_package == "tensorflow-cpu"
    assert plan.python_candidates[0] == "3.11" and plan.loader == "saved_model"
    assert plan.packages[0].requirement == "tensorflow-cpu==2.15.1"
    assert plan.excludes == ("tensorflow",)
    assert "tf-keras==2.15.*" in plan.constraints and "tensorflow-text==2.15.*" in plan.constraints
    assert plan.as_of == "2024-03-08T23:59:59Z"  # TF 2.15.1's release date: the model records none
    assert all(d.reason for d in plan.decisions)


def test_requirements_pin_that_disagrees_is_reported_and_the_model_wins(tmp_path):
    plan = plan_for(MODELS / "tf215-savedmodel", "numpy<2\ntensorflow==2.13.0\n", tmp_path)
    assert plan.tensorflow_version == "2.15.1"
    warn = decision(plan, "requirement:tensorflow")
    assert warn.level == "warning"
    assert "tensorflow==2.13.0" in warn.reason and "2.15.1" in warn.reason
    assert warn.reason.startswith("requirements.txt:2 ")  # relative to the file given: no host path in the plan
    assert "numpy<2" in [p.requirement for p in plan.packages]


def test_tf_version_option_overrides_the_model(tmp_path):
    plan = plan_for(MODELS / "tf215-savedmodel", "tensorflow==2.13.0\n", tmp_path, tf_version="2.13.0")
    assert plan.tensorflow_version == "2.13.0"
    assert decision(plan, "tensorflow").reason == "given with --tf-version"


def test_unknown_tf_version_is_an_error():
    with pytest.raises(releases.UnknownRelease, match="2.99.0"):
        plan_for(MODELS / "tf215-savedmodel", tf_version="2.99.0")


def test_nightly_producer_maps_to_its_final_release_with_a_note():
    plan = plan_for(CORPUS / "tfx-estimator-serving-nightly")
    assert plan.tensorflow_version == "2.9.0"
    d = decision(plan, "tensorflow")
    assert d.level == "warning" and "nightly" in d.reason and "2.9.0-dev20220227" in d.reason


REGISTRY = BaseAvailability(registry="registry.example")  # serves every Python's image: the exact release


def test_dirty_prerelease_producer():
    plan = plan_for(CORPUS / "tfserving-half-plus-three", bases=REGISTRY)
    assert plan.tensorflow_version.startswith("1.15.")
    assert "1.0.0-rc2" in decision(plan, "tensorflow").reason


def test_tf1_producer_maps_to_the_last_1x_release_and_says_how_to_use_tf2():
    plan = plan_for(CORPUS / "tfserving-half-plus-two-cpu", bases=REGISTRY)  # written by 1.14.0
    assert plan.tensorflow_version == "1.15.5"
    assert plan.python_candidates[0] == "3.7"
    assert plan.tensorflow_package == "tensorflow"  # no tensorflow-cpu wheel for 1.15.5
    assert "TensorFlow 2 also loads 1.x SavedModels" in decision(plan, "tensorflow").reason


def test_keras3_archive_runs_on_tf216_plus_with_its_keras_pinned():
    plan = plan_for(MODELS / "tf218-keras3.keras")
    assert releases.get(plan.tensorflow_version).keras_major == 3
    assert "keras==3.8.0" in [p.requirement for p in plan.packages]
    assert plan.loader == "keras" and plan.keras_major == 3 and not plan.legacy_keras
    assert plan.as_of.startswith(inspect_model(MODELS / "tf218-keras3.keras").saved_at[:10])


def test_keras2_archive_maps_to_its_tf_minor():
    plan = plan_for(MODELS / "tf215-keras2.keras")
    assert plan.tensorflow_version == "2.15.1" and plan.keras_major == 2


def test_keras2_model_on_keras3_tensorflow_uses_tf_keras():
    plan = plan_for(MODELS / "tf215-full.h5", tf_version="2.16.2")
    assert plan.legacy_keras and ("TF_USE_LEGACY_KERAS", "1") in plan.env
    assert "tf-keras==2.16.*" in [p.requirement for p in plan.packages]


def test_weights_only_is_refused_before_building():
    with pytest.raises(WeightsOnly, match="weights only") as refused:
        plan_for(MODELS / "tf215-weights.h5")
    assert refused.value.exit_code == 26  # as when the verifier finds it: one code for one failure
    assert "--model-builder" in refused.value.message  # the way out is named


def test_weights_only_with_a_model_builder_is_planned_from_the_files_keras():
    plan = plan_for(MODELS / "tf215-weights.h5", model_builder=ModelBuilder("my_model", "build"))
    # The weights file records Keras 2.15.0, as a whole-model .h5 does: the same release is chosen.
    assert (plan.tensorflow_version, plan.loader, plan.model_builder) == ("2.15.1", "keras", "my_model:build")
    assert plan.to_json()["model_builder"] == "my_model:build"
    assert "load_weights" in decision(plan, "loader").choice


def test_keras3_weights_with_a_model_builder_load_through_keras_3_not_tf_keras(tmp_path):
    """Keras 3's save_weights('w.weights.h5') records no version (the release comes from --tf-version or a pin)
    and is read by Keras 3 itself: no tf-keras, unlike a Keras 2 weights file on the same TensorFlow."""
    import h5py

    path = tmp_path / "w.weights.h5"
    with h5py.File(path, "w") as f:  # the layout of keras/src/saving/saving_lib.py's H5IOStore
        f.create_dataset("layers/dense/vars/0", data=[[0.5]])
        f.create_group("vars")
    builder = ModelBuilder("my_model", "build")
    plan = plan_for(path, model_builder=builder, tf_version="2.17.1")
    assert inspect_model(path).weights_layout == "keras3-weights"
    assert (plan.keras_major, plan.legacy_keras, plan.model_builder) == (3, False, "my_model:build")
    keras2 = plan_for(MODELS / "tf215-weights.h5", model_builder=builder, tf_version="2.17.1")
    assert keras2.legacy_keras and "tf-keras==2.17.*" in [p.requirement for p in keras2.packages]


def test_unsafe_deserialization_with_a_model_builder_is_a_usage_error():
    with pytest.raises(UsageError, match="no effect with --model-builder"):
        plan_for(MODELS / "tf215-weights.h5", model_builder=ModelBuilder("m", "b"), unsafe_deserialization=True)


def test_a_model_builder_for_a_whole_model_is_a_usage_error():
    with pytest.raises(UsageError, match="weights-only") as refused:
        plan_for(MODELS / "tf215-full.h5", model_builder=ModelBuilder("my_model", "build"))
    assert refused.value.exit_code == 2
    assert "model_builder" not in plan_for(MODELS / "tf215-full.h5").to_json()  # smenv.json stays as it was


def test_companion_added_when_the_model_needs_it():
    plan = plan_for(MODELS / "tf215-text-savedmodel")
    text = next(p for p in plan.packages if p.requirement.startswith("tensorflow-text"))
    assert text.requirement == "tensorflow-text==2.15.*"
    assert "NormalizeUTF8" in text.reason and "requirements lack it" in text.reason
    assert "tensorflow-text" in plan.cutoff_exempt


def test_companion_in_requirements_with_the_wrong_version_is_corrected(tmp_path):
    plan = plan_for(MODELS / "tf215-text-savedmodel", "tensorflow-text==2.13.0\n", tmp_path)
    warn = decision(plan, "requirement:tensorflow-text")
    assert warn.level == "warning" and "2.13.0" in warn.reason
    assert [p.requirement for p in plan.packages if "text" in p.requirement] == ["tensorflow-text==2.15.*"]


def test_companion_without_a_release_for_this_tf_is_an_error():
    facts = inspect_model(MODELS / "tf218-savedmodel")
    from smenv.model.facts import CompanionPackage

    facts = replace(facts, companion_packages=(CompanionPackage("tensorflow-io", ("op IO>ReadFile (1 use)",)),))
    with pytest.raises(ResolutionError, match="tensorflow-io has no release for TensorFlow 2.18"):
        resolve(facts, None, ResolveOptions())


@pytest.mark.parametrize(
    "tf, package, route, python",
    [
        ("2.15.1", "tensorflow[and-cuda]", "pip-cuda", "3.11"),
        ("2.12.0", "tensorflow", "cuda-base-image", "3.10"),  # Ubuntu 22.04's Python in the CUDA 11.8 image
        ("2.0.0", "tensorflow-gpu", "tensorflow-gpu", "3.6"),
    ],
)
def test_gpu_routes(tf, package, route, python):
    plan = plan_for(MODELS / "tf215-savedmodel", tf_version=tf, gpu=True)
    assert (plan.tensorflow_package, plan.gpu_route, plan.python_candidates[0]) == (package, route, python)
    if route != "pip-cuda":  # a CUDA runtime image fixes the Python to its Ubuntu's
        assert plan.python_candidates == (python,)
    assert plan.device == "gpu" and plan.cuda and plan.cudnn


@pytest.mark.parametrize(
    "opts, python, image, install_python, words",
    [
        ({}, "3.11", "python:3.11-slim-bookworm", False, "Debian bookworm"),
        ({}, "3.9", "python:3.9-slim-bullseye", False, "smenv base --python 3.9"),
        ({}, "3.10", "python:3.10-slim-bookworm", False, "no Debian release ships Python 3.10"),
        ({"tf_version": "2.12.0", "gpu": True}, "3.10", "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04", True, "installs Ubuntu"),
        ({"tf_version": "2.15.1", "gpu": True}, "3.11", "python:3.11-slim-bookworm", False, "official image"),
        ({"base_image": "registry.example/ml/python:3.11"}, "3.11", "registry.example/ml/python:3.11", False, "--base-image"),
    ],
)
def test_base_image_is_a_recorded_decision_for_the_locked_python(opts, python, image, install_python, words):
    plan = plan_for(MODELS / "tf215-savedmodel", **opts)
    choice = choose_base_image(plan, python)
    assert (choice.image, choice.install_python) == (image, install_python)
    assert choice.decision.topic == "base_image" and choice.decision.choice == image and words in choice.decision.reason
    recorded = plan.with_decision(choice.decision)
    assert [d for d in recorded.decisions if d.topic == "base_image"] == [choice.decision]
    assert recorded.decisions[: len(plan.decisions)] == plan.decisions  # --base-image's own decision is the same one


def test_python_option_must_be_supported():
    from smenv.errors import UsageError

    with pytest.raises(UsageError, match="no wheels for Python 3.13"):
        plan_for(MODELS / "tf215-savedmodel", python="3.13")
    assert plan_for(MODELS / "tf215-savedmodel", python="3.10").python_candidates == ("3.10",)


def test_as_of_option_and_exact_user_pins_are_exempt(tmp_path):
    plan = plan_for(MODELS / "tf215-savedmodel", "pandas==2.2.3\nrequests>=2\n", tmp_path, as_of="2024-06-01")
    assert plan.as_of == "2024-06-01T23:59:59Z"
    assert "pandas" in plan.cutoff_exempt and "requests" not in plan.cutoff_exempt


@pytest.mark.parametrize(
    "keras, tf",
    [("2.2.4-tf", "2.2"), ("2.4.0", "2.4"), ("2.5.0", "2.5"), ("2.13.1", "2.13"), ("2.2.4", "2.15"), ("3.3.3", "2.17")],
)
def test_keras_version_to_tensorflow(keras, tf):
    assert releases.for_keras(keras).release.minor == tf


def test_a_companion_known_only_by_a_keras_class_in_a_savedmodel_is_optional():
    # tf.Transform's layer in a Keras SavedModel: Keras revives it from the saved functions without the class.
    plan = plan_for(CORPUS / "tfx-keras-serving")
    tft = next(p for p in plan.packages if p.name == "tensorflow-transform")
    assert "revives" in tft.optional
    # An op of the package in the graph: required, whatever else names it.
    text = next(p for p in plan_for(MODELS / "tf215-text-savedmodel").packages if p.name == "tensorflow-text")
    assert text.optional == ""


def test_a_companion_the_requirements_ask_for_is_never_optional(tmp_path):
    plan = plan_for(CORPUS / "tfx-keras-serving", "tensorflow-transform\n", tmp_path)
    assert next(p for p in plan.packages if p.name == "tensorflow-transform").optional == ""


def test_unsafe_deserialization_is_recorded_as_a_warning_and_in_smenv_json():
    plan = plan_for(MODELS / "tf218-keras3-lambda.keras", unsafe_deserialization=True)
    assert plan.keras_safe_mode is False and plan.to_json()["keras_safe_mode"] is False
    decision = next(d for d in plan.decisions if d.topic == "keras_safe_mode")
    assert decision.level == "warning" and decision.choice == "off"
    assert "1 Lambda layer(s)" in decision.reason and "safe_mode=False" in decision.reason


def test_safe_mode_is_the_default_and_is_not_written():
    plan = plan_for(MODELS / "tf218-keras3-lambda.keras")
    assert plan.keras_safe_mode is True and "keras_safe_mode" not in plan.to_json()  # images built before stay the same
    assert not [d for d in plan.decisions if d.topic == "keras_safe_mode"]


def test_unsafe_deserialization_says_it_does_nothing_for_a_plain_savedmodel():
    plan = plan_for(MODELS / "tf215-savedmodel", unsafe_deserialization=True)
    decision = next(d for d in plan.decisions if d.topic == "keras_safe_mode")
    assert decision.level == "info" and "no effect" in decision.reason
    assert plan.keras_safe_mode is True and "keras_safe_mode" not in plan.to_json()  # so no label either
