from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path

import pytest

from frozen_index import FrozenIndex, FrozenIndexServer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
FIXTURES = REPO / "tests" / "fixtures"


def tiny_rootfs(tmp_path: Path) -> Path:
    """A one-file root filesystem to `docker import`: no shell, no Python, so nothing in it can run."""
    tar_path = tmp_path / "tiny.tar"
    with tarfile.open(tar_path, "w") as tar:
        data = b"hello from smenv's tests\n"
        info = tarfile.TarInfo("etc/smenv-test")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return tar_path


def corpus_table() -> list[dict[str, str]]:
    """The known facts table of ../shared/corpus/README.md, one dict per model directory."""
    readme = CORPUS / "README.md"
    if not readme.is_file():
        # Not a skip: CI always has ../shared beside the clone; without it the suite is incomplete.
        raise RuntimeError(f"{readme} is missing: clone the project with shared/ beside it")
    rows = [line for line in readme.read_text().splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    table = []
    for line in rows[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        table.append(dict(zip(header, cells)))
    return table


def literal(cell: str) -> str:
    """`the literal text `b'v1.12.0-...'`` -> the stored text; other cells as they are."""
    m = re.search(r"`([^`]*)`", cell)
    return m.group(1) if m else cell


# The package index: every test resolves against tests/index/ (frozen_index.py), served on 127.0.0.1,
# so the same commit gives the same locks next year and the suite needs no network. It is set for the
# whole session (module fixtures lock too); only tests marked `network` get the user's own settings back
# (the live index), because users do.
INDEX_VARIABLES = ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL")
OTHER_INDEX_VARIABLES = ("UV_EXTRA_INDEX_URL", "UV_INDEX", "PIP_EXTRA_INDEX_URL", "UV_FIND_LINKS", "PIP_FIND_LINKS")
_INDEXES: list[FrozenIndex] = []  # for the end-of-run report of what the frozen data lacked
_USERS_OWN = {name: os.environ.get(name) for name in INDEX_VARIABLES + OTHER_INDEX_VARIABLES}


@pytest.fixture(scope="session", autouse=True)
def frozen_index():
    index = FrozenIndex(mode=os.environ.get("SMENV_FREEZE_INDEX", "replay"))
    _INDEXES.append(index)
    with FrozenIndexServer(index) as server:
        for name in INDEX_VARIABLES:
            os.environ[name] = server.url
        for name in OTHER_INDEX_VARIABLES:
            os.environ.pop(name, None)
        try:
            yield server
        finally:
            for name, value in _USERS_OWN.items():
                os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


@pytest.fixture(scope="session", autouse=True)
def state_home(tmp_path_factory):
    """Build and lock logs written by the run (smenv writes uv's explanation of a failed lock there) go to a
    temporary directory, not the user's ~/.local/state; a test that sets XDG_STATE_HOME itself still wins."""
    before = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    try:
        yield Path(os.environ["XDG_STATE_HOME"])
    finally:
        os.environ.pop("XDG_STATE_HOME", None) if before is None else os.environ.__setitem__("XDG_STATE_HOME", before)


@pytest.fixture(autouse=True)
def live_index_for_network_tests(request, monkeypatch):
    if request.node.get_closest_marker("network"):
        for name, value in _USERS_OWN.items():
            monkeypatch.delenv(name, raising=False) if value is None else monkeypatch.setenv(name, value)


def pytest_terminal_summary(terminalreporter):
    misses = sorted({miss for index in _INDEXES for miss in index.misses})
    if misses:
        terminalreporter.write_line(
            f"frozen index: the tests asked for {len(misses)} file(s) that tests/index lacks "
            f"(record them with SMENV_FREEZE_INDEX=record): {', '.join(misses[:20])}", red=True)


@pytest.fixture
def tmp_model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    return d


# Docker: one engine connection and one locally built base image per test session. An unreachable
# engine fails these tests (CI starts the engine); it never skips them.


@pytest.fixture(scope="session")
def docker_engine():
    from smenv.docker.engine import connect

    engine = connect()
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def base_image_311(docker_engine):
    """python:3.11-slim-bookworm, built by smenv from Debian packages unless the engine has it."""
    from smenv.docker.base_image import build_base_image

    return build_base_image(docker_engine, "3.11")
