"""ImagePlan: the plan an image carries (smenv.json), read once into types for diagnosis."""

from __future__ import annotations

import json

from conftest import FIXTURES, REPO
from smenv import pipeline
from smenv.env.resolve import ResolveOptions
from smenv.model.facts import CustomObject
from smenv.verify.diagnose import diagnose
from smenv.verify.image_plan import ImagePlan


def test_a_rendered_plan():
    plan = ImagePlan.from_json(json.loads((REPO / "dockerfiles" / "half_plus_two" / "smenv.json").read_text()))
    assert (plan.tf, plan.python, plan.keras_major, plan.legacy_keras, plan.keras3) == ("2.14.0", "3.11", 2, False, False)
    assert plan.release is not None and plan.release.version == "2.14.0"
    assert plan.locked["absl-py"] == "2.0.0" and plan.code == () and plan.imports == ()
    assert (plan.model_tensorflow, plan.model_keras, plan.model_size_bytes) == ("2.14.0", None, 38933)


def test_a_dry_run_plan_has_no_lock():
    generated = pipeline.generate(pipeline.ModelInput(FIXTURES / "models" / "tf215-custom-layer.h5"), None,
                                  ResolveOptions(), None, code=(FIXTURES / "usercode" / "smenv_fixture_layers.py",), dry_run=True)
    plan = ImagePlan.from_json(generated.plan_json)
    assert plan.locked == {} and plan.code == ("smenv_fixture_layers",)
    assert plan.model_keras and plan.model_tensorflow is None
    assert [o.class_name for o in plan.objects] == ["ScaleShift"]
    assert plan.find_object("ScaleShift") == plan.objects[0]


def test_what_the_plan_does_not_say_is_unknown():
    plan = ImagePlan.from_json({"model": {"custom_objects": [{"class_name": "X"}]}})
    assert (plan.tf, plan.release, plan.python, plan.keras_major, plan.locked) == ("unknown", None, None, None, {})
    assert plan.objects == (CustomObject("X", None, None, "class"),)
    assert plan.requirement("tensorflow-text") == "tensorflow-text"  # no release known: no pin
    assert plan.producer_release() is None


def test_diagnose_takes_the_typed_plan_or_its_json():
    data = {"environment": {"tensorflow_version": "2.15.1"}, "lock": {"packages": {"numpy": "2.0.1"}}}
    result = {"ok": False, "stage": "import", "error": {"type": "ImportError", "message": "numpy.core.multiarray failed to import"}}
    assert diagnose(result, data) == diagnose(result, ImagePlan.from_json(data))
    assert diagnose(result, data).fix_packages == ("numpy<2",)
