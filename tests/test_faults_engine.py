"""The connection to the Docker engine lost during a build, end to end through `python -m smenv build`.

smenv talks to the real engine through tests/fault_proxy.py on a unix socket of its own
(DOCKER_HOST=unix:///tmp/smenv-h4-....sock), which closes connections where a test says: in the middle
of the `docker load` upload, at the verification container's wait, or from the N-th request on (the
engine gone for good). What must hold: exit 6, one line naming what smenv was doing and the address,
and, checked through the real socket afterwards, no throw-away container, no half-loaded tag and no
temporary file left behind.

The load and N-th-request cases build on a one-file base with a ready dependency image (as the registry
fault tests do), so only the model's layer is made; the wait case needs an image that really verifies
(the tf215 model, from the Docker cache when other tests built it).
"""

from __future__ import annotations

import re

import pytest

from fault_proxy import FaultProxy, Rule
from smenv.docker.engine import DEFAULT_HOST, THROWAWAY_LABEL
from test_faults import MODEL, assert_no_private_temp, error_lines, remove_quietly, run_smenv, smenv_env, unique
from test_faults_registry import fresh_model, registry, tiny_setup  # noqa: F401 (fixtures)

pytestmark = pytest.mark.docker
ENGINE_SOCKET = DEFAULT_HOST.removeprefix("unix://")


@pytest.fixture
def engine_proxy():
    path = f"/tmp/smenv-h4-engine-{unique()}.sock"  # short: a unix socket path holds 107 bytes at most
    with FaultProxy(ENGINE_SOCKET, listen=path) as proxy:
        yield proxy


def lost_line(proc, proxy: FaultProxy) -> str:
    assert proc.returncode == 6, proc.stderr[-3000:]
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"unix://{proxy.listen}" in errors[0], errors[0]
    return errors[0]


def assert_no_throwaway_of(engine, image_ids: set[str]) -> None:
    left = [c["Id"][:12] for c in engine.client.api.containers(all=True, filters={"label": THROWAWAY_LABEL})
            if c.get("ImageID") in image_ids]
    assert left == [], f"throw-away containers left behind: {left}"


def test_engine_lost_in_the_middle_of_docker_load(docker_engine, engine_proxy, tiny_setup, tmp_path):  # noqa: F811
    base_tag, base_id, _ = tiny_setup
    rule = Rule("POST", r"/images/load", cut_after=256 << 10)  # the model's layer is 512 KiB of noise
    engine_proxy.rules = [rule]
    tag = f"smenv-h4-faults/lost-load:{unique()}"
    env = smenv_env(tmp_path, DOCKER_HOST=f"unix://{engine_proxy.listen}")
    try:
        proc = run_smenv(["build", str(fresh_model(tmp_path)), "--base-image", base_tag, "--no-verify",
                          "--tag", tag], env, timeout=300)
        assert rule.hits, engine_proxy.requests
        line = lost_line(proc, engine_proxy)
        assert line.startswith(f"smenv: error: docker load ({tag}): "), line
        assert not docker_engine.image_exists(tag)  # through the real socket: no half-loaded tag
        assert_no_private_temp(env)
    finally:
        remove_quietly(docker_engine, tag)


def test_engine_lost_while_the_verification_container_runs(docker_engine, base_image_311, engine_proxy, tmp_path):
    rule = Rule("POST", r"/containers/[0-9a-f]+/wait", cut_after=0, times=1)  # back for the clean-up
    engine_proxy.rules = [rule]
    tag = f"smenv-h4-faults/lost-verify:{unique()}"
    env = smenv_env(tmp_path, DOCKER_HOST=f"unix://{engine_proxy.listen}")
    try:
        proc = run_smenv(["build", str(MODEL), "--tag", tag], env, timeout=900)
        assert rule.hits, engine_proxy.requests
        line = lost_line(proc, engine_proxy)
        assert line.startswith(f"smenv: error: docker run {tag}: "), line
        assert "time limit" not in proc.stdout + proc.stderr  # a lost connection is not a timeout (it was: exit 28)
        container = re.search(r"/containers/([0-9a-f]+)/wait", rule.hits[0]).group(1)
        assert not docker_engine.client.api.containers(all=True, filters={"id": container}), "container left behind"
        assert_no_throwaway_of(docker_engine, {docker_engine.image_info(tag).id})
        assert_no_private_temp(env)
    finally:
        remove_quietly(docker_engine, tag)


def test_engine_gone_for_good_from_any_request_on(docker_engine, engine_proxy, tiny_setup, tmp_path):  # noqa: F811
    """Every request of a build in turn is the first the engine never answers (nor any after it)."""
    base_tag, _, _ = tiny_setup
    model = fresh_model(tmp_path)
    tag = f"smenv-h4-faults/gone:{unique()}"
    env = smenv_env(tmp_path, DOCKER_HOST=f"unix://{engine_proxy.listen}")
    args = ["build", str(model), "--base-image", base_tag, "--no-verify", "--tag", tag]
    try:
        engine_proxy.rules = []
        whole = run_smenv(args, env, timeout=300)
        assert whole.returncode == 0, whole.stderr[-3000:]
        requests = list(engine_proxy.requests)
        whole_id = docker_engine.image_info(tag).id  # the same inputs give this image ID every time
        remove_quietly(docker_engine, tag)
        seen = []
        for n in range(len(requests)):
            engine_proxy.requests.clear()
            engine_proxy.rules = [Rule("*", ".", cut_after=0, after=n)]
            proc = run_smenv(args, env, timeout=300)
            if proc.returncode == 0:  # the clean-up's last calls: a whole build may not need them all
                assert n > 0 and engine_proxy.requests, requests
                continue
            line = lost_line(proc, engine_proxy)
            seen.append(f"{requests[n]}: {line}")
            # Through the real socket: no tag, or (the engine lost after the load) the whole image, never a part.
            left = docker_engine.image_info(tag)
            assert left is None or left.id == whole_id, (n, requests[n])
            remove_quietly(docker_engine, tag)
            assert_no_private_temp(env)
        assert len(seen) >= 3, (requests, seen)  # ping, image inspections, the load: each said
        print("\n".join(f"{n}: {r}" for n, r in enumerate(requests)), "\n", "\n".join(seen))
    finally:
        remove_quietly(docker_engine, tag)


def test_engine_lost_in_the_middle_of_a_push(docker_engine, engine_proxy, registry, tiny_setup, tmp_path):  # noqa: F811
    """The push's progress stream cut after its first lines (urllib3's own ProtocolError escaped the SDK
    here: an internal error, exit 1, before)."""
    proxy, _, logins = registry
    proxy.rules = []
    base_tag, _, _ = tiny_setup
    rule = Rule("POST", r"/images/.+/push", cut_answer_after=300)
    engine_proxy.rules = [rule]
    tag = f"{proxy.host}/smenv-h4/lost-push:{unique()}"
    env = smenv_env(tmp_path, DOCKER_HOST=f"unix://{engine_proxy.listen}", DOCKER_CONFIG=str(logins["good"][0]))
    try:
        proc = run_smenv(["build", str(fresh_model(tmp_path)), "--base-image", base_tag, "--no-verify",
                          "--tag", tag, "--push"], env, timeout=300)
        assert rule.hits, engine_proxy.requests
        line = lost_line(proc, engine_proxy)
        assert line.startswith(f"smenv: error: docker push {tag}: lost the connection to the Docker engine"), line
        assert docker_engine.image_exists(tag)  # built and kept
        assert_no_private_temp(env)
    finally:
        remove_quietly(docker_engine, tag)
