"""Images assembled without commits: reproducible, rebuilt by one layer, saved, pushed and shared.

Real engine, real registry (Debian's docker-registry on 127.0.0.1, with and without htpasswd), real
`docker build` of the generated Dockerfile for comparison; no mocks. Builds skip verification (the
model's loading is tests/test_docker_build.py's business) and share the TF 2.15 dependency image with
the other Docker tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import FIXTURES
from registry_util import Registry
from smenv import pipeline
from smenv.docker.layers import file_chunks
from smenv.env.resolve import ResolveOptions

pytestmark = pytest.mark.docker
MODEL = FIXTURES / "models" / "tf215-savedmodel"
PASSWORD = "s3cret-smenv-registry-pw"


def build(engine, model: Path = MODEL, **kwargs) -> pipeline.Built:
    return pipeline.build(pipeline.ModelInput(model), None, ResolveOptions(), engine=engine, verify=False, **kwargs)


def deps_tag(engine, built: pipeline.Built) -> str:
    base_id = engine.image_info(built.generated.base_image).id
    return pipeline.dependency_image_tag(built.generated, base_id, online=False)


def files(engine, image: str, path: str) -> dict[str, tuple]:
    """Every entry under `path` in `image`: type, content digest or link target, mode, owner."""
    container = engine.client.api.create_container(image, ["true"])["Id"]
    try:
        stream, _ = engine.client.api.get_archive(container, path, chunk_size=1 << 20)
        from smenv.docker.layers import _ChunkReader

        found = {}
        with tarfile.open(fileobj=_ChunkReader(iter(stream)), mode="r|") as tar:
            for m in tar:
                digest = hashlib.sha256(tar.extractfile(m).read()).hexdigest() if m.isreg() else m.linkname
                found[m.name] = (m.type, digest, m.mode & 0o7777, m.uid, m.gid)
        return found
    finally:
        engine.client.api.remove_container(container, force=True)


@pytest.fixture(scope="module")
def first(docker_engine, base_image_311):
    return build(docker_engine)


def test_a_model_only_change_adds_one_layer_on_the_same_dependencies(first, docker_engine, tmp_path):
    changed = tmp_path / "model"
    shutil.copytree(MODEL, changed)
    (changed / "assets").mkdir(exist_ok=True)
    (changed / "assets" / "note.txt").write_text("a new asset, nothing else changed\n")
    try:
        again = build(docker_engine, changed, tag="smenv-test/changed:1")
        assert again.dependencies == "reused"
        before, after = docker_engine.image_info(first.image), docker_engine.image_info(again.image)
        assert before.diff_ids[:-1] == after.diff_ids[:-1] and before.diff_ids[-1] != after.diff_ids[-1]
        layer = files(docker_engine, again.image, "/opt/smenv/model/assets")
        assert "assets/note.txt" in layer
    finally:
        docker_engine.remove_image("smenv-test/changed:1")


def test_an_unchanged_large_file_is_neither_written_nor_sent_again(first, docker_engine, tmp_path, monkeypatch):
    """A large model file has a layer of its own (smenv/docker/model_layers.py): after a small change the
    engine already has that layer, so only the small layer is written and loaded."""
    from smenv.docker import model_layers

    monkeypatch.setattr(model_layers, "BIG_FILE", 4 << 20)  # a 6 MiB file stands for a large one
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    (model / "assets").mkdir(exist_ok=True)
    big = model / "assets" / "embeddings.bin"
    big.write_bytes(os.urandom(6 << 20))
    os.utime(big, (1_600_000_000, 1_600_000_000))  # not "racily clean": the stat cache may keep it
    written = []
    real = model_layers.layer_from_entries
    monkeypatch.setattr(model_layers, "layer_from_entries", lambda entries, out: written.append(out) or real(entries, out))
    try:
        one = build(docker_engine, model, tag="smenv-test/big:1")
        assert len(written) == 2  # the large file's layer, then the rest
        (model / "assets" / "note.txt").write_text("a small change\n")
        two = build(docker_engine, model, tag="smenv-test/big:2")
        assert len(written) == 3  # only the rest, again
        before, after = docker_engine.image_info(one.image), docker_engine.image_info(two.image)
        assert before.diff_ids[:-1] == after.diff_ids[:-1] and before.diff_ids[-1] != after.diff_ids[-1]
        history = [h["CreatedBy"] for h in docker_engine.client.api.history(two.image)[:2]]
        assert history[1] == "smenv: /opt/smenv/model/assets/embeddings.bin (a large model file, a layer of its own)"
        assert files(docker_engine, two.image, "/opt/smenv/model/assets")["assets/embeddings.bin"][1] == \
            hashlib.sha256(big.read_bytes()).hexdigest()
    finally:
        for tag in ("smenv-test/big:1", "smenv-test/big:2"):
            docker_engine.remove_image(tag)


def test_the_same_model_from_another_directory_gives_the_same_image_id(first, docker_engine, tmp_path):
    moved = tmp_path / "elsewhere" / MODEL.name
    shutil.copytree(MODEL, moved)
    again = build(docker_engine, moved.resolve(), tag="smenv-test/moved:1")
    try:
        assert again.image_id == first.image_id
    finally:
        docker_engine.remove_image("smenv-test/moved:1")


def test_labels_and_config_say_what_went_in(first, docker_engine):
    info = docker_engine.image_info(first.image)
    assert info.labels["org.smenv.model.digest"] == first.generated.facts.digest
    assert info.labels["org.smenv.lock.digest"] == first.generated.lock.digest
    assert info.labels["org.opencontainers.image.base.name"] == first.generated.base_image
    assert info.config["User"] == "10001:10001" and info.config["WorkingDir"] == "/home/smenv"
    assert info.created.startswith(first.generated.plan.as_of[:10])  # fixed by the inputs, not the clock
    history = docker_engine.client.api.history(first.image)
    assert [h["CreatedBy"] for h in history[:2]] == [
        "smenv: the model, its plan, the verifier and --code", pipeline.VENV_HISTORY]


def test_the_same_inputs_give_the_same_image_id(first, docker_engine):
    docker_engine.remove_image(first.image)
    again = build(docker_engine)
    assert again.image_id == first.image_id and again.dependencies == "reused"


def test_the_generated_dockerfile_builds_the_same_files(first, docker_engine, tmp_path):
    """`docker build` of `smenv generate --offline`'s context: the portable way to make the same image."""
    generated = pipeline.generate(pipeline.ModelInput(MODEL), None, ResolveOptions(), tmp_path / "ctx", offline=True)
    tag = "smenv-test/dockerfile:1"
    try:
        docker_engine.build(generated.context, tag, tmp_path / "build.log")
        for path in ("/opt/venv", "/opt/smenv", "/home/smenv"):
            ours, theirs = files(docker_engine, first.image, path), files(docker_engine, tag, path)
            assert len(ours) > 0
            differ = sorted(name for name in ours.keys() | theirs.keys() if ours.get(name) != theirs.get(name))
            assert not differ, f"{path}: {len(differ)} entries differ, e.g. {differ[:5]}"
        # And the same settings: how it runs, serves, is health-checked and labelled.
        keys = ("Cmd", "Entrypoint", "Env", "ExposedPorts", "Healthcheck", "Labels", "User", "WorkingDir")
        ours, theirs = docker_engine.image_info(first.image).config, docker_engine.image_info(tag).config
        assert {k: ours.get(k) for k in keys} == {k: theirs.get(k) for k in keys}
        assert ours["Cmd"] == ["python", "-m", "serve"] and ours["ExposedPorts"] == {"8501/tcp": {}}
    finally:
        docker_engine.remove_image(tag, force=True)


def test_dependencies_installed_anew_give_the_same_image(first, docker_engine):
    """As on another machine with the same base image: no dependency image, so the lock is installed again."""
    docker_engine.remove_image(deps_tag(docker_engine, first))
    docker_engine.remove_image(first.image)
    again = build(docker_engine)
    assert again.dependencies == "installed"
    assert again.image_id == first.image_id


def test_save_writes_an_archive_that_loads_as_the_same_image(first, docker_engine, tmp_path):
    out = tmp_path / "out" / "image.tar"
    tag = "smenv-test/saved:1"
    built = build(docker_engine, tag=tag, save=out)
    assert built.saved == out.resolve() and built.image_id == first.image_id
    assert not [p for p in out.parent.iterdir() if p.name != "image.tar"], "a temporary file was left"
    with tarfile.open(out) as tar:  # complete, for tools without an engine: every layer is in it
        manifest = json.loads(tar.extractfile("manifest.json").read())
        names = set(tar.getnames())
    assert manifest[0]["RepoTags"] == [tag] and all(layer in names for layer in manifest[0]["Layers"])
    docker_engine.remove_image(tag)
    docker_engine.load(file_chunks(out), "the saved archive")
    assert docker_engine.image_info(tag).id == first.image_id
    docker_engine.remove_image(tag)


def run_smenv(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smenv", *args], capture_output=True, text=True, env=env, timeout=1800)


def test_push_uses_the_engine_credentials_and_keeps_none(first, docker_engine, tmp_path):
    with Registry(tmp_path / "registry", user="smenv", password=PASSWORD) as registry:
        tag = f"{registry.host}/ml/tf215:1"
        args = ["build", str(MODEL), "--tag", tag, "--push", "--no-verify", "--json"]
        no_login = dict(os.environ, DOCKER_CONFIG=str(tmp_path / "no-login"), NO_COLOR="1")
        refused = run_smenv(args, no_login)
        assert refused.returncode == 12, refused.stderr
        error = json.loads(refused.stdout)["error"]
        assert error["kind"] == "registry_error" and f"docker login {registry.host}" in error["message"]
        logged_in = dict(os.environ, DOCKER_CONFIG=str(registry.docker_config(tmp_path / "login")), NO_COLOR="1")
        pushed = run_smenv(args, logged_in)
        assert pushed.returncode == 0, pushed.stderr
        result = json.loads(pushed.stdout)
        assert result["pushed"]["digest"].startswith("sha256:") and registry.tags("ml/tf215") == ["1"]
        # Never a credential in what smenv leaves: output, build log, image config and history.
        log = Path(result["build_log"]).read_text()
        config = json.dumps(docker_engine.client.api.inspect_image(tag)) + json.dumps(docker_engine.client.api.history(tag))
        token = registry.docker_config(tmp_path / "again").joinpath("config.json").read_text()
        for text in (refused.stdout, refused.stderr, pushed.stdout, pushed.stderr, log, config):
            assert PASSWORD not in text and json.loads(token)["auths"][registry.host]["auth"] not in text
        docker_engine.remove_image(tag)


def test_a_second_engine_takes_the_dependency_image_from_the_cache_registry(first, docker_engine, tmp_path):
    with Registry(tmp_path / "registry") as registry:
        cache = f"{registry.host}/smenv-cache"
        shared = build(docker_engine, cache_registry=cache)
        tag = deps_tag(docker_engine, shared)
        assert registry.tags(f"smenv-cache/{tag.split(':')[0]}") == [tag.split(":")[1]]
        # The second machine has the base image but not the dependency image.
        docker_engine.remove_image(tag)
        docker_engine.remove_image(f"{cache}/{tag}")
        docker_engine.remove_image(first.image)
        again = build(docker_engine, cache_registry=cache)
        assert again.dependencies == f"pulled from {cache}"
        assert again.image_id == first.image_id
        assert again.base_obtained == "on the engine"
        docker_engine.remove_image(f"{cache}/{tag}")

        # Anyone who can push to the cache can put another image under the lock's name: it is not used.
        docker_engine.tag_image(first.generated.base_image, f"{cache}/{tag}")
        docker_engine.push(f"{cache}/{tag}")
        docker_engine.remove_image(f"{cache}/{tag}")
        docker_engine.remove_image(tag)
        messages: list[str] = []
        poisoned = build(docker_engine, cache_registry=cache, progress=messages.append)
        assert poisoned.dependencies == "installed"
        assert any("is not this lock's dependency image (its label names lock None" in m for m in messages), messages
        assert poisoned.image_id == first.image_id
        # ...and the cache now holds this lock's own dependency image under that name.
        assert any(m == f"dependencies: sharing {cache}/{tag}" for m in messages), messages
        assert docker_engine.image_info(f"{cache}/{tag}").id == docker_engine.image_info(tag).id
        docker_engine.remove_image(f"{cache}/{tag}")
