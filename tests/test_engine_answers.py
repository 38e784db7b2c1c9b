"""The real Engine over a scripted low-level client (tests/fuzz_engine_answers.py): what it makes of
real registry and engine answers, beyond the fuzz property (tests/test_fuzz.py) that nothing crashes."""

from __future__ import annotations

import fuzz_engine_answers as answers


def test_real_engine_answers_are_taken():
    """The seeds are real answers: the good ones go through, the failing ones are the right typed errors."""
    from smenv.errors import BaseImageError, RegistryError

    def outcome(body, seed):
        try:
            return body(seed)
        except (BaseImageError, RegistryError) as exc:
            return type(exc).__name__

    bases = [outcome(answers.pull_a_base, s) for s in answers.seed_base_scenarios()]
    assert [getattr(b, "how", b) for b in bases] == ["pulled 127.0.0.1:5000/library/python:3.11-slim-bookworm"] * 3 + [
        "BaseImageError", "BaseImageError"]
    registry = [outcome(answers.registry_answers, s) for s in answers.seed_registry_scenarios()[:5]]
    assert registry == [True, "sha256:" + "d" * 64, "RegistryError", "RegistryError", True]


def test_a_poisoned_cache_registry_image_is_not_used():
    """An image under the lock's name whose label names another lock is untagged and installed over."""
    import json

    scenario = json.loads(answers.seed_registry_scenarios()[4])
    assert answers.registry_answers(json.dumps(scenario).encode()) is True
    scenario["inspect"]["Config"]["Labels"]["org.smenv.lock.digest"] = "sha256:" + "f" * 64
    assert answers.registry_answers(json.dumps(scenario).encode()) is False
    scenario["inspect"]["Config"]["Labels"]["org.smenv.lock.digest"] = answers.LOCK_DIGEST
    scenario["inspect"]["RootFS"]["Layers"] = ["sha256:" + "9" * 64, "sha256:" + "2" * 64]
    assert answers.registry_answers(json.dumps(scenario).encode()) is False


def test_docker_load_waits_longer_than_an_ordinary_call():
    """`docker load` answers once every layer is registered: minutes for a large layer on a busy engine.
    The load gets LOAD_TIMEOUT; the engine's ordinary limit is back afterwards."""
    from smenv.docker.engine import CALL_TIMEOUT, LOAD_TIMEOUT

    api = answers.AnswersAPI({})
    api.timeout = CALL_TIMEOUT
    seen = []

    def load_image(data):
        seen.append(api.timeout)
        return iter([{"stream": "Loaded image: smenv-deps:x\n"}])

    api.load_image = load_image
    engine = answers.engine_over(api)
    assert engine.load(iter([b""]), "smenv-deps:x") == ["smenv-deps:x"]
    assert seen == [LOAD_TIMEOUT] and api.timeout == CALL_TIMEOUT
