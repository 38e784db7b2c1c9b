"""A TF 1.x corpus model, built as a new user would on a host with no registry: no flags.

Its own release (1.15.5) needs Python 3.7, which no Debian release ships, so the plan uses TF 2.7.4 on
Python 3.9 (smenv/data/release_fallbacks.json); the build obtains python:3.9-slim-bullseye itself (the
engine's, else built from Debian), and the verifier loads the graph (reference variables: through a
tf.compat.v1 session) and calls its signatures. Real engine, real images.
"""

from __future__ import annotations

import pytest

from conftest import CORPUS
from smenv import pipeline
from smenv.env.resolve import ResolveOptions

pytestmark = pytest.mark.docker


def test_tf1_counter_builds_on_the_nearest_release_and_its_signatures_answer(docker_engine):
    tag = "smenv-h2-tf1-counter:test"
    messages: list[str] = []
    try:
        built = pipeline.build(pipeline.ModelInput(CORPUS / "tfserving-counter"), None, ResolveOptions(),
                               tag=tag, engine=docker_engine, progress=messages.append)
        plan = built.generated.plan
        assert (plan.tensorflow_version, plan.exact_release, built.generated.lock.python) == ("2.7.4", "1.15.5", "3.9")
        assert any("cannot be built on this host" in n for n in built.generated.notes)
        verdict = built.verdict
        assert verdict.ok, verdict.to_json()
        assert verdict.result["tensorflow"] == "2.7.4" and verdict.result["python"].startswith("3.9")
        assert verdict.result["loader"].startswith("tf.compat.v1 session")
        answered = {s["name"] for s in verdict.result["signatures"] if not s.get("error")}
        assert {"get_counter", "incr_counter", "reset_counter"} <= answered
        assert docker_engine.image_info("python:3.9-slim-bullseye") is not None
    finally:
        if docker_engine.image_info(tag) is not None:
            docker_engine.remove_image(tag, force=True)
