"""The TensorFlow 2.8-2.11 era, built and verified as a new user would: no flags.

CI builds one model of each era (issue 10), each with a real engine and real images:
- TF 1.x: tests/test_corpus_nearest_build.py (tfserving-counter, 1.5.0-rc1, on TF 2.7.4 / Python 3.9);
- TF 2.0-2.7: tests/test_source_builds.py (tfrust-regression-savedmodel, 2.5.0, its sdists built in the sandbox);
- TF 2.8-2.11: here;
- TF 2.12-2.15: tests/test_docker_build.py (the 2.14.0 corpus model and the 2.15 fixtures);
- TF >= 2.16 with Keras 3: tests/test_docker_build.py (the 2.18 `.keras` fixture).

Here: tfx-estimator-serving-nightly, an Estimator SavedModel written by a TF 2.9 nightly. Its release is
2.9.0 (the nightly's final release), whose Pythons are 3.7-3.10; this host can obtain 3.9 (Debian
bullseye), so the plan says so, and the build verifies it loads, calls it and serves it.
"""

from __future__ import annotations

import pytest

from conftest import CORPUS
from smenv import pipeline
from smenv.env.resolve import ResolveOptions

pytestmark = pytest.mark.docker


def test_a_tf29_estimator_builds_on_its_release_and_answers(docker_engine):
    tag = "smenv-era/tf29-estimator:test"
    try:
        built = pipeline.build(pipeline.ModelInput(CORPUS / "tfx-estimator-serving-nightly"), None, ResolveOptions(),
                               tag=tag, engine=docker_engine)
        plan = built.generated.plan
        assert (plan.tensorflow_version, plan.exact_release, built.generated.lock.python) == ("2.9.0", None, "3.9")
        python = next(d for d in built.generated.plan_json["environment"]["decisions"] if d["topic"] == "python")
        assert "not 3.10" in python["reason"]  # the newest it supports has no obtainable base here, and it says so
        verdict = built.verdict
        assert verdict.ok, verdict.to_json()
        assert verdict.result["tensorflow"] == "2.9.0" and verdict.result["python"].startswith("3.9")
        assert verdict.to_json()["serve"]["ok"], verdict.to_json()
    finally:
        if docker_engine.image_info(tag) is not None:
            docker_engine.remove_image(tag, force=True)
