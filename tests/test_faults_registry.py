"""Registry faults, end to end through `python -m smenv build`: `--push` and `--cache-registry` against a
real docker-registry (htpasswd) that refuses the credentials (401), answers 500, or goes away in the
middle of a blob upload (tests/fault_proxy.py in front of it, on 127.0.0.1).

What must hold: `--push` fails with exit 12 in one line that says what happened and what to do, the image
stays whole on the engine, and no credential appears in any output or log; a cache registry that fails
is said in one line and the build goes on. Each test leaves no image or temporary file behind.

To keep them fast, the images are tiny: the base is a one-file root filesystem, and the dependency image
for its lock is made beforehand (a LABEL on that base, under the tag smenv gives it), so `smenv build`
reuses it and only assembles and loads the model's layer. Every push then sends a few hundred KiB.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import tiny_rootfs
from fault_proxy import FaultProxy, Rule
from registry_util import Registry
from smenv import pipeline
from smenv.env.resolve import ResolveOptions
from test_faults import MODEL, assert_no_private_temp, derive, error_lines, remove_quietly, run_smenv, smenv_env, unique

pytestmark = pytest.mark.docker
USER, PASSWORD = "smenv", "pw-" + "x7Kq2mZr9"  # built at run time: a literal in the output would be ours


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A docker-registry with htpasswd behind a fault proxy; logins for the proxy's address, good and bad."""
    work = tmp_path_factory.mktemp("registry")
    with Registry(work / "registry", user=USER, password=PASSWORD) as real, FaultProxy(("127.0.0.1", real.port)) as proxy:
        logins = {}
        for name, password in (("good", PASSWORD), ("wrong", "not-" + PASSWORD[::-1])):
            directory = work / f"login-{name}"
            directory.mkdir()
            token = base64.b64encode(f"{USER}:{password}".encode()).decode()
            (directory / "config.json").write_text(json.dumps({"auths": {proxy.host: {"auth": token}}}))
            logins[name] = (directory, password, token)
        logins["none"] = (work / "login-none", None, None)
        yield proxy, real, logins


@pytest.fixture(scope="module")
def tiny_setup(docker_engine, tmp_path_factory):
    """A one-file base image and a ready dependency image for the tf215 model's lock on it."""
    work = tmp_path_factory.mktemp("tiny")
    base_tag = f"smenv-h4-faults-base:{unique()}"
    base = docker_engine.import_rootfs(tiny_rootfs(work), base_tag)
    deps = deps_tag(base_tag, base.id, work)
    derive(docker_engine, base_tag, deps)
    yield base_tag, base.id, deps
    remove_quietly(docker_engine, deps, base_tag)


def deps_tag(base_tag: str, base_id: str, work: Path) -> str:
    generated = pipeline.generate(pipeline.ModelInput(MODEL), None, ResolveOptions(base_image=base_tag), None)
    return pipeline.dependency_image_tag(generated, base_id, online=False)


def fresh_model(tmp_path: Path) -> Path:
    """The tf215 model with an asset of its own: its layer is new to every registry, so it is uploaded."""
    model = tmp_path / "tf215-savedmodel"
    shutil.copytree(MODEL, model)
    (model / "assets").mkdir(exist_ok=True)
    (model / "assets" / "noise.bin").write_bytes(os.urandom(512 << 10))
    return model


def build_env(tmp_path: Path, login: tuple) -> dict[str, str]:
    directory, _, _ = login
    return smenv_env(tmp_path, DOCKER_CONFIG=str(directory), XDG_STATE_HOME=str(tmp_path / "state"))


def assert_no_credential(proc, env: dict[str, str], login: tuple) -> None:
    """Neither the password nor the base64 token in stdout, stderr or any build log."""
    _, password, token = login
    logs = [p.read_text(errors="replace") for p in Path(env["XDG_STATE_HOME"]).rglob("*.log")]
    for text in (proc.stdout, proc.stderr, *logs):
        for secret in (PASSWORD, password, token):
            if secret:
                assert secret not in text


def one_error(proc) -> str:
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return errors[0]


def proxy_tags(engine, proxy: FaultProxy) -> list[str]:
    return [t for i in engine.client.api.images() for t in i.get("RepoTags") or () if t.startswith(proxy.host)]


# -- --push ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("login_name", ["wrong", "none"])
def test_push_with_refused_credentials_is_exit_12_and_keeps_the_image(
    docker_engine, registry, tiny_setup, tmp_path, login_name
):
    proxy, _, logins = registry
    base_tag, _, _ = tiny_setup
    proxy.rules = []
    tag = f"{proxy.host}/smenv-h4/refused:{unique()}"
    env = build_env(tmp_path, logins[login_name])
    try:
        proc = run_smenv(["build", str(fresh_model(tmp_path)), "--base-image", base_tag, "--no-verify",
                          "--tag", tag, "--push"], env, timeout=300)
        assert proc.returncode == 12, proc.stderr[-3000:]
        line = one_error(proc)
        assert line.startswith(f"smenv: error: docker push {tag}: ") and ("unauthorized" in line or "no basic auth credentials" in line), line
        assert f"`docker login {proxy.host}`" in line and f"`docker push {tag}`" in line, line
        assert docker_engine.image_exists(tag)  # built and kept: pushing again is all that is left to do
        assert_no_credential(proc, env, logins[login_name])
        assert_no_private_temp(env)
    finally:
        remove_quietly(docker_engine, tag)


def test_push_answered_500_is_exit_12_and_keeps_the_image(docker_engine, registry, tiny_setup, tmp_path):
    proxy, _, logins = registry
    base_tag, _, _ = tiny_setup
    rule = Rule("PUT", r"/manifests/", status=500)
    proxy.rules = [rule]
    tag = f"{proxy.host}/smenv-h4/error500:{unique()}"
    env = build_env(tmp_path, logins["good"])
    try:
        proc = run_smenv(["build", str(fresh_model(tmp_path)), "--base-image", base_tag, "--no-verify",
                          "--tag", tag, "--push"], env, timeout=300)
        assert rule.hits, proxy.requests  # the blobs went up; the manifest was refused
        assert proc.returncode == 12, proc.stderr[-3000:]
        line = one_error(proc)
        assert line.startswith(f"smenv: error: docker push {tag}: ") and "500" in line and "server error" in line, line
        assert f"`docker push {tag}`" in line, line
        assert docker_engine.image_exists(tag)
        assert_no_credential(proc, env, logins["good"])
        assert_no_private_temp(env)
    finally:
        proxy.rules = []
        remove_quietly(docker_engine, tag)


def test_push_to_a_registry_gone_mid_upload_is_exit_12(docker_engine, registry, tiny_setup, tmp_path):
    """The connection closes after 64 KiB of every blob upload: the engine retries (4 times, 5-20 s apart:
    about 50 s in all) and gives up; smenv says so once."""
    proxy, _, logins = registry
    base_tag, _, _ = tiny_setup
    rule = Rule("*", r"/blobs/uploads/.+", cut_after=64 << 10)  # the PATCH (or monolithic PUT) carrying data
    proxy.rules = [rule]
    tag = f"{proxy.host}/smenv-h4/gone:{unique()}"
    env = build_env(tmp_path, logins["good"])
    started = time.monotonic()
    try:
        proc = run_smenv(["build", str(fresh_model(tmp_path)), "--base-image", base_tag, "--no-verify",
                          "--tag", tag, "--push"], env, timeout=300)
        assert rule.hits, proxy.requests
        assert proc.returncode == 12, proc.stderr[-3000:]
        line = one_error(proc)
        assert line.startswith(f"smenv: error: docker push {tag}: ") and f"`docker push {tag}`" in line, line
        assert "closed the connection" in line and "_state=" not in line, line  # the upload's state token is noise
        assert docker_engine.image_exists(tag)
        assert_no_credential(proc, env, logins["good"])
        assert_no_private_temp(env)
        print(f"push to a registry gone mid-upload: failed after {time.monotonic() - started:.0f} s")
    finally:
        proxy.rules = []
        remove_quietly(docker_engine, tag)


def test_a_registry_that_stops_answering_is_a_registry_error_at_the_time_limit(
    docker_engine, registry, tiny_setup, monkeypatch
):
    """The manifest PUT is never answered: the engine waits on the registry and sends nothing, so the call
    times out on smenv's side. That is exit 12 naming the registry (it was 'lost the Docker engine', exit 6).
    Through the Engine with an 8 s limit, to keep the test short; the CLI's limit is CALL_TIMEOUT."""
    from smenv.docker.engine import connect
    from smenv.errors import RegistryError

    proxy, _, logins = registry
    base_tag, _, _ = tiny_setup
    rule = Rule("PUT", r"/manifests/", hang=True)
    proxy.rules = [rule]
    tag = f"{proxy.host}/smenv-h4/silent:{unique()}"
    monkeypatch.setenv("DOCKER_CONFIG", str(logins["good"][0]))
    engine = connect()
    engine.client.api.timeout = 8
    docker_engine.tag_image(base_tag, tag)
    try:
        with pytest.raises(RegistryError) as raised:
            engine.push(tag)
        assert rule.hits, proxy.requests
        assert raised.value.exit_code == 12
        assert raised.value.message.startswith(f"docker push {tag}: nothing from the registry {proxy.host} for 8 s")
    finally:
        proxy.rules = []
        engine.close()
        remove_quietly(docker_engine, tag)


# -- --cache-registry: not fatal -------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["refused", "500", "gone"])
def test_a_cache_registry_that_cannot_be_filled_is_said_and_the_build_goes_on(
    docker_engine, registry, tiny_setup, tmp_path, fault
):
    proxy, _, logins = registry
    base_tag, _, deps = tiny_setup
    rule = {
        "refused": None,
        "500": Rule("PUT", r"/manifests/", status=500),
        "gone": Rule("*", r"/blobs/uploads/.+", cut_after=1 << 10),
    }[fault]
    proxy.rules = [rule] if rule else []
    cache = f"{proxy.host}/smenv-h4-cache-{unique()}"
    tag = f"smenv-h4-faults/cache:{unique()}"
    env = build_env(tmp_path, logins["wrong" if fault == "refused" else "good"])
    try:
        proc = run_smenv(["build", str(fresh_model(tmp_path)), "--base-image", base_tag, "--no-verify",
                          "--tag", tag, "--cache-registry", cache], env, timeout=300)
        assert rule is None or rule.hits, proxy.requests
        assert proc.returncode == 0, proc.stderr[-3000:]
        said = [line for line in proc.stderr.splitlines() if "not shared through the cache registry" in line]
        assert len(said) == 1 and "the build goes on" in said[0] and not error_lines(proc.stderr), proc.stderr[-3000:]
        assert {"refused": "docker login", "500": "server error", "gone": "closed the connection"}[fault] in said[0]
        assert docker_engine.image_exists(tag) and docker_engine.image_exists(deps)
        assert proxy_tags(docker_engine, proxy) == []  # the registry's name for the dependency image is undone
        assert_no_credential(proc, env, logins["good"])
        assert_no_private_temp(env)
    finally:
        proxy.rules = []
        remove_quietly(docker_engine, tag)


@pytest.mark.parametrize("fault", ["refused", "500"])
def test_a_cache_registry_that_cannot_be_read_is_said_and_the_lock_is_installed(
    docker_engine, registry, tmp_path, fault
):
    """No dependency image on the engine, and the cache cannot give one: smenv goes on to install the lock.
    On this one-file base the install itself fails (exit 11), which is how the test sees that it ran."""
    proxy, _, logins = registry
    base_tag = f"smenv-h4-faults-base:{unique()}"
    base = docker_engine.import_rootfs(tiny_rootfs(tmp_path), base_tag)
    rule = Rule("GET", r"/manifests/", status=500) if fault == "500" else None
    proxy.rules = [rule] if rule else []
    cache = f"{proxy.host}/smenv-h4-cache-{unique()}"
    env = build_env(tmp_path, logins["wrong" if fault == "refused" else "good"])
    tag = f"smenv-h4-faults/cache-read:{unique()}"
    try:
        proc = run_smenv(["build", str(MODEL), "--base-image", base_tag, "--no-verify", "--tag", tag,
                          "--cache-registry", cache], env, timeout=600)
        assert rule is None or rule.hits, proxy.requests
        said = [line for line in proc.stderr.splitlines() if "not taken from the cache registry" in line]
        assert len(said) == 1 and "installed instead" in said[0], proc.stderr[-3000:]
        assert proc.returncode == 11, proc.stderr[-3000:]  # the install ran, and failed on this base
        assert "installing the locked packages failed" in one_error(proc)
        assert not docker_engine.image_exists(tag) and proxy_tags(docker_engine, proxy) == []
        assert_no_credential(proc, env, logins["good"])
        assert_no_private_temp(env)
    finally:
        proxy.rules = []
        remove_quietly(docker_engine, tag, base_tag)


# -- a base image pull that fails or hangs ---------------------------------------------------------------


@pytest.mark.parametrize("fault", ["silent", "missing"])
def test_a_base_image_pull_that_hangs_or_finds_nothing_is_exit_10_in_one_line(docker_engine, registry, tmp_path, fault):
    """A --base-image in a registry that never answers its manifest (the pull's time limit, SMENV_PULL_TIMEOUT,
    cut to 5 s here) or does not have it: exit 10 naming the image and what was tried."""
    proxy, _, logins = registry
    rule = Rule("GET", r"/manifests/", hang=True) if fault == "silent" else None
    proxy.rules = [rule] if rule else []
    base = f"{proxy.host}/smenv-h4/no-base:{unique()}"
    env = smenv_env(tmp_path, DOCKER_CONFIG=str(logins["good"][0]), SMENV_PULL_TIMEOUT="5")
    try:
        started = time.monotonic()
        proc = run_smenv(["build", str(MODEL), "--base-image", base, "--no-verify",
                          "--tag", f"smenv-h4-faults/no-base:{unique()}"], env, timeout=300)
        assert rule is None or rule.hits, proxy.requests
        assert proc.returncode == 10, proc.stderr[-3000:]
        line = one_error(proc)
        assert line.startswith(f"smenv: error: base image {base} cannot be obtained: "), line
        words = "not finished within 5 s" if fault == "silent" else "is not in its registry"
        assert words in line, line
        assert time.monotonic() - started < 120
        assert not docker_engine.image_exists(base)
        assert_no_private_temp(env)
    finally:
        proxy.rules = []
