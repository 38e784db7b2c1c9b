"""The Docker engine interface, against the real local engine: no mocks.

These fail, not skip, when the engine is unreachable: a suite that silently skipped them would say
nothing about the Docker half of smenv.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from conftest import tiny_rootfs
from smenv.docker.engine import DEFAULT_HOST, Engine, connect, resolve_endpoint
from smenv.errors import DockerError, DockerUnavailable

pytestmark = pytest.mark.docker


def unique_tag() -> str:
    return f"smenv-test/engine:{uuid.uuid4().hex[:12]}"


def write_context(config_dir: Path, name: str, host: str) -> None:
    """A Docker CLI context, laid out as `docker context create` does."""
    meta_dir = config_dir / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta_dir.mkdir(parents=True)
    meta = {"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}
    (meta_dir / "meta.json").write_text(json.dumps(meta))
    (config_dir / "config.json").write_text(json.dumps({"currentContext": name}))


def test_connect_reaches_the_engine():
    with connect() as engine:
        assert isinstance(engine, Engine)
        assert engine.server_version != "?"
        assert engine.api_version.startswith("1.")
        assert engine.arch in ("amd64", "arm64", "ppc64le", "s390x", "riscv64", "386")


def test_bogus_docker_host_is_one_line_docker_unavailable(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    with pytest.raises(DockerUnavailable) as caught:
        connect()
    error = caught.value
    assert error.exit_code == 6 and error.kind == "docker_unavailable"
    message = str(error)
    assert "\n" not in message
    assert message.startswith("cannot reach the Docker engine at unix:///nonexistent.sock")
    assert "DOCKER_HOST" in message


def test_malformed_docker_host_says_what_an_endpoint_looks_like(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "foo://bar")
    with pytest.raises(DockerUnavailable, match="is not a Docker endpoint"):
        connect()


def test_current_context_is_honoured_when_docker_host_is_unset(monkeypatch, tmp_path):
    real = resolve_endpoint()  # where this machine's engine is, before the environment changes
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    write_context(tmp_path, "smenv-test", real.host)
    assert resolve_endpoint().source == "context smenv-test"
    with connect() as engine:
        assert engine.endpoint.host == real.host
        assert engine.server_version != "?"


def test_unreachable_context_names_the_context(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    write_context(tmp_path, "gone", "unix:///nonexistent.sock")
    with pytest.raises(DockerUnavailable) as caught:
        connect()
    assert "'gone'" in str(caught.value) and "docker context use" in str(caught.value)


def test_missing_current_context_is_docker_unavailable(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "never-created"}))
    with pytest.raises(DockerUnavailable, match="'never-created' does not exist"):
        connect()


def test_docker_host_wins_over_the_context(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    write_context(tmp_path, "elsewhere", "tcp://192.0.2.1:2376")
    monkeypatch.setenv("DOCKER_HOST", DEFAULT_HOST)
    endpoint = resolve_endpoint()
    assert (endpoint.host, endpoint.source) == (DEFAULT_HOST, "DOCKER_HOST")


def test_import_inspect_remove(tmp_path):
    tag = unique_tag()
    with connect() as engine:
        try:
            info = engine.import_rootfs(
                tiny_rootfs(tmp_path),
                tag,
                changes=["ENV LANG=C.UTF-8", 'CMD ["python3"]'],
                labels={"org.smenv.test": "value with spaces", "org.smenv.quote": 'a"b'},
            )
            assert info.id.startswith("sha256:")
            assert tag in info.tags
            assert info.size_bytes > 0 and info.created
            assert info.labels["org.smenv.test"] == "value with spaces"
            assert info.labels["org.smenv.quote"] == 'a"b'
            assert "LANG=C.UTF-8" in info.env and info.cmd == ("python3",)
            assert engine.image_exists(tag)
            assert engine.image_info(info.id) == info
        finally:
            removed = engine.remove_image(tag, force=True)
        assert removed
        assert not engine.image_exists(tag)
        assert engine.image_info(tag) is None
        assert engine.remove_image(tag) is False  # not found is not an error


def test_import_of_a_missing_tarball_is_a_docker_error(tmp_path):
    # Not sent to the engine: the SDK would pass an unreadable path on as a URL to download.
    with connect() as engine, pytest.raises(DockerError, match="no such tarball"):
        engine.import_rootfs(tmp_path / "missing.tar", unique_tag())


def test_engine_refusals_are_one_line_docker_errors(tmp_path):
    tarball = tiny_rootfs(tmp_path)
    with connect() as engine:
        with pytest.raises(DockerError, match="not a valid change command") as caught:
            engine.import_rootfs(tarball, unique_tag(), changes=["FROBNICATE x"])
        assert "\n" not in str(caught.value) and caught.value.exit_code == 6
        with pytest.raises(DockerError, match="must be lowercase"):
            engine.import_rootfs(tarball, "Not A Tag")
        not_a_tar = tmp_path / "not.tar"
        not_a_tar.write_bytes(b"definitely not a tar archive" * 10)
        tag = unique_tag()
        try:
            with pytest.raises(DockerError, match="docker import"):
                engine.import_rootfs(not_a_tar, tag)
        finally:
            engine.remove_image(tag, force=True)


def test_tag_image_points_a_second_tag_at_the_same_image(tmp_path):
    first, second = unique_tag(), unique_tag()
    with connect() as engine:
        try:
            info = engine.import_rootfs(tiny_rootfs(tmp_path), first)
            engine.tag_image(info.id, second)
            assert engine.image_info(second).id == info.id
        finally:
            engine.remove_image(first, force=True)
            engine.remove_image(second, force=True)
