"""The debootstrap base image, built for real on the local engine once per session.

The first session on a machine runs debootstrap (about a minute); later ones reuse the image, or
import the cached root filesystem. Engine unreachable = failure, not skip.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid
from pathlib import Path

import pytest

from smenv.docker.base_image import (
    DEBIAN_FOR_PYTHON,
    DEFAULT_MIRROR,
    GO_TO_DEBIAN_ARCH,
    ORIGIN_LABEL,
    BaseImage,
    build_base_image,
    default_base_image,
    default_cache_dir,
    host_mirror,
    require_debootstrap,
    suite_for,
)
from smenv.docker.engine import Engine, connect
from smenv.errors import BaseImageError, DebootstrapMissing, NeedsRoot, UnsupportedPython

# -- without Docker -------------------------------------------------------------------------------------


def test_default_base_image_is_the_official_name():
    assert default_base_image("3.11") == "python:3.11-slim-bookworm"
    assert default_base_image("3.9.18") == "python:3.9-slim-bullseye"
    assert default_base_image("3.13") == "python:3.13-slim-trixie"
    assert set(DEBIAN_FOR_PYTHON) == {"3.9", "3.11", "3.13"}


@pytest.mark.parametrize("python", ["3.10", "3.12", "2.7", "three"])
def test_unsupported_python_names_the_supported_ones(python):
    with pytest.raises(UnsupportedPython) as caught:
        suite_for(python)
    message = str(caught.value)
    assert caught.value.exit_code == 10 and "\n" not in message
    assert python in message
    assert all(v in message for v in ("3.9", "3.11", "3.13")) and "--base-image" in message


def test_host_mirror_reads_deb822_and_one_line_sources(tmp_path):
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    # Third-party and security entries come first, and are skipped.
    (apt / "sources.list.d" / "a-nodesource.sources").write_text(
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n"
    )
    (apt / "sources.list.d" / "b-debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    (apt / "sources.list.d" / "c-ignored.list.disabled").write_text("deb http://wrong.example/debian bookworm main\n")
    assert host_mirror(apt) == "http://mirror.example/debian"

    (apt / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [signed-by=/usr/share/keyrings/x.gpg] http://one-line.example/debian bookworm main\n"
    )
    assert host_mirror(apt) == "http://one-line.example/debian"


def test_host_mirror_falls_back_to_deb_debian_org(tmp_path):
    (tmp_path / "sources.list").write_text("deb http://archive.ubuntu.com/ubuntu noble main\n")
    assert host_mirror(tmp_path) == DEFAULT_MIRROR
    assert host_mirror(tmp_path / "missing") == DEFAULT_MIRROR


def test_missing_debootstrap_says_how_to_install_it(tmp_path):
    with pytest.raises(DebootstrapMissing, match="`apt-get install debootstrap`"):
        require_debootstrap(search_path=str(tmp_path))


def test_debootstrap_needs_root():
    if os.geteuid() != 0:
        with pytest.raises(NeedsRoot, match="needs root"):
            require_debootstrap()
        return
    os.seteuid(65534)  # a real unprivileged effective uid; root's saved uid lets us switch back
    try:
        with pytest.raises(NeedsRoot, match="needs root"):
            require_debootstrap()
    finally:
        os.seteuid(0)


# -- with the real engine -------------------------------------------------------------------------------


@pytest.mark.docker
def test_unsupported_python_fails_before_touching_docker(docker_engine):
    with pytest.raises(UnsupportedPython, match="3.9 \\(bullseye\\), 3.11 \\(bookworm\\), 3.13 \\(trixie\\)"):
        build_base_image(docker_engine, "3.10")
    assert not docker_engine.image_exists("python:3.10-slim-bookworm")


@pytest.mark.docker
def test_base_image_is_debian_python_311(docker_engine, base_image_311):
    assert base_image_311.tag == "python:3.11-slim-bookworm"
    assert (base_image_311.python, base_image_311.suite) == ("3.11", "bookworm")
    info = docker_engine.image_info(base_image_311.tag)
    assert info is not None and info.id == base_image_311.image_id
    assert info.labels.get(ORIGIN_LABEL) == "debootstrap", f"the engine's {info.tags} was not built by smenv"
    assert info.labels["org.smenv.base.suite"] == "bookworm"
    assert info.labels["org.smenv.base.python"].startswith("3.11.")
    assert "LANG=C.UTF-8" in info.env and any(e.startswith("PATH=/usr/local/sbin:") for e in info.env)
    assert info.cmd == ("python3",)
    assert 60 * 2**20 < info.size_bytes < 250 * 2**20

    # ca-certificates is in: pip can reach an HTTPS index from images built on this base.
    script = "import sys, ssl, os; print(sys.version_info[:2], os.path.isfile('/etc/ssl/certs/ca-certificates.crt'))"
    run = docker_engine.run_throwaway(base_image_311.tag, ["python3", "-c", script])
    assert run.exit_code == 0, run.output
    assert run.output.strip() == "(3, 11) True"


@pytest.mark.docker
def test_venv_and_pip_work_without_network(docker_engine, base_image_311):
    run = docker_engine.run_throwaway(
        base_image_311.tag, ["sh", "-c", "python3 -m venv /tmp/v && /tmp/v/bin/pip --version"], network="none"
    )
    assert run.exit_code == 0, run.output
    assert "(python 3.11)" in run.output
    # The container is gone afterwards.
    assert docker_engine.client.containers.list(all=True, filters={"id": run.container_id}) == []


@pytest.mark.docker
def test_throwaway_run_has_no_network_and_reports_failure(docker_engine, base_image_311):
    script = "import socket, sys; print(sorted(name for _, name in socket.if_nameindex())); sys.exit(3)"
    run = docker_engine.run_throwaway(base_image_311.tag, ["python3", "-c", script], network="none")
    assert run.exit_code == 3
    assert run.output.strip() == "['lo']"


@pytest.mark.docker
def test_second_call_reuses_the_image(docker_engine, base_image_311):
    """Reused means nothing was made again: no debootstrap, no import (how long it takes is for the bench)."""
    messages: list[str] = []
    again = build_base_image(docker_engine, "3.11", progress=messages.append)
    assert not {"debootstrap", "import"} & set(again.seconds)
    assert again.reused and again.image_id == base_image_311.image_id
    assert again.origin == "debootstrap" and again.python_full.startswith("3.11.")
    assert messages and "reusing" in messages[0]


@pytest.mark.docker
def test_force_rebuilds_from_the_cached_root_filesystem(docker_engine, base_image_311):
    tag = "smenv-test/base:3.11-force"
    had_tarball = any(default_cache_dir().glob("debian-bookworm-*.tar"))
    messages: list[str] = []
    try:
        built = build_base_image(docker_engine, "3.11", tag=tag, force=True, progress=messages.append)
        assert not built.reused
        assert built.origin == "debootstrap" and built.python_full.startswith("3.11.")
        if had_tarball:
            assert built.rootfs_cached and "debootstrap" not in built.seconds
            assert any("cached root filesystem" in m for m in messages)
        assert {"import", "verify", "total"} <= set(built.seconds)
        assert Path(built.tarball).is_file()
        assert docker_engine.image_info(tag).labels[ORIGIN_LABEL] == "debootstrap"
        assert all(isinstance(m, str) and "\n" not in m for m in messages)
    finally:
        docker_engine.remove_image(tag, force=True)


def fake_cached_rootfs(cache: Path, engine: Engine) -> Path:
    """A cache entry whose tarball holds one file and no Python: it imports, and then fails the check."""
    arch = GO_TO_DEBIAN_ARCH.get(engine.arch, engine.arch)
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"debian-bookworm-{arch}.tar"
    with tarfile.open(tarball, "w") as tar:
        info = tarfile.TarInfo("etc/not-python")
        tar.addfile(info, io.BytesIO(b""))
    facts = {"suite": "bookworm", "mirror": DEFAULT_MIRROR, "debian_package": "none", "python_full": "3.11.0"}
    (cache / f"debian-bookworm-{arch}.json").write_text(json.dumps(facts))
    return tarball


@pytest.mark.docker
def test_an_image_that_fails_the_check_is_removed_and_the_tag_restored(docker_engine, tmp_path):
    tag = f"smenv-test/base:broken-{uuid.uuid4().hex[:8]}"
    previous = docker_engine.import_rootfs(fake_cached_rootfs(tmp_path / "cache", docker_engine), tag)
    try:
        with pytest.raises(BaseImageError, match="does not start.*delete it to rebuild from Debian") as caught:
            build_base_image(docker_engine, "3.11", tag=tag, cache_dir=tmp_path / "cache", force=True)
        assert caught.value.exit_code == 10 and "\n" not in str(caught.value)
        assert docker_engine.image_info(tag).id == previous.id
    finally:
        docker_engine.remove_image(tag, force=True)


@pytest.mark.docker
def test_an_existing_tag_with_another_python_is_not_reused(docker_engine, tmp_path):
    tag = f"smenv-test/base:other-{uuid.uuid4().hex[:8]}"
    docker_engine.import_rootfs(
        fake_cached_rootfs(tmp_path, docker_engine), tag, labels={"org.smenv.base.python": "3.13.5"}
    )
    try:
        with pytest.raises(BaseImageError, match="holds Python 3.13.5, not 3.11: pass --force"):
            build_base_image(docker_engine, "3.11", tag=tag)
    finally:
        docker_engine.remove_image(tag, force=True)
