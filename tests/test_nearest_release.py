"""When the model's own release cannot be built here, the plan uses the nearest one that loads it, and says so.

TF 1.15 needs Python <= 3.7 and TF 2.0-2.4 <= 3.8: no Debian release ships those, so with no registry
their base cannot be obtained. The policy is smenv/data/release_fallbacks.json; --exact refuses.
"""

from __future__ import annotations

import json
from importlib import resources

import pytest
from packaging.specifiers import SpecifierSet

from conftest import CORPUS
from smenv import pipeline
from smenv.env import releases
from smenv.env.bases import BaseAvailability
from smenv.env.fallback import nearest_loadable
from smenv.env.resolve import ResolveOptions, resolve
from smenv.errors import ExactReleaseUnavailable
from smenv.model.inspect import inspect_model

TF1 = CORPUS / "tfserving-half-plus-two-cpu"  # producer 1.14.0 -> 1.15.5 (Python 3.6-3.7)
TF23_KERAS = CORPUS / "tfrust-keras-multi-input"  # a Keras 2 SavedModel of TF 2.3.0 (Python 3.5-3.8)


def plan_for(path, **options):
    return resolve(inspect_model(path), None, ResolveOptions(**options))


def test_a_tf1_savedmodel_plans_onto_the_oldest_buildable_release_and_says_why():
    plan = plan_for(TF1)
    assert (plan.tensorflow_version, plan.python_candidates[0], plan.exact_release) == ("2.7.4", "3.9", "1.15.5")
    decision = next(d for d in plan.decisions if d.topic == "tensorflow")
    assert decision.level == "warning" and decision.choice == "2.7.4"
    for words in ("Not 1.15.5 itself", "no Debian release ships Python 3.7", "oldest release that builds here",
                  "TensorFlow 2 loads TF 1.x SavedModels", "--exact refuses instead"):
        assert words in decision.reason
    assert plan.as_of.startswith("2022-09-02")  # TensorFlow 2.7.4's release date, not 1.15.5's


def test_a_tf23_keras_savedmodel_falls_back_within_keras_2():
    plan = plan_for(TF23_KERAS)
    assert plan.tensorflow_version == "2.7.4" and plan.exact_release == "2.3.0" and plan.keras_major == 2


def test_exact_refuses_with_exit_8_and_says_what_to_do():
    with pytest.raises(ExactReleaseUnavailable) as caught:
        plan_for(TF1, exact=True)
    assert caught.value.exit_code == 8 and "\n" not in caught.value.message
    assert "--exact: TensorFlow 1.15.5 cannot be built here" in caught.value.message
    assert "--base-registry" in caught.value.message and caught.value.path == str(TF1)


def test_a_registry_that_serves_the_old_python_gives_the_exact_release():
    plan = plan_for(TF1, bases=BaseAvailability(registry="127.0.0.1:5000"))
    assert (plan.tensorflow_version, plan.python_candidates[0], plan.exact_release) == ("1.15.5", "3.7", None)
    assert plan_for(TF1, bases=BaseAvailability(on_engine=("3.7",))).tensorflow_version == "1.15.5"


def test_the_users_own_choices_are_kept():
    assert plan_for(TF1, tf_version="2.15.1").exact_release is None
    assert plan_for(TF1, base_image="registry.example/py37:1").tensorflow_version == "1.15.5"


def test_the_plan_and_the_console_note_say_it(tmp_path):
    generated = pipeline.generate(pipeline.ModelInput(TF1), None, ResolveOptions(), None, dry_run=True)
    assert generated.plan_json["environment"]["exact_release"] == "1.15.5"
    assert any("TensorFlow 1.15.5, the model's own release, cannot be built on this host" in n for n in generated.notes)


def test_the_policy_file_names_its_sources_and_its_releases_exist():
    policy = json.loads(resources.files("smenv.data").joinpath("release_fallbacks.json").read_text())
    assert policy["buildable"]["sources"]
    for rule in policy["rules"]:
        assert rule["sources"] and rule["why"]
        assert any(SpecifierSet(rule["loads_in"]).contains(r.v) for r in releases.table())
    # h5 files of tf.keras 2.2.4-tf (TF 1.15-2.2) land on a Keras 2 release that builds here
    h5 = nearest_loadable("h5", releases.get("2.2.3") or releases.newest_patch("2.2"), BaseAvailability())
    assert h5 is not None and h5.release.version == "2.7.4"
