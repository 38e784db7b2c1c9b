"""Large model files in layers of their own, found unchanged without being read (no engine: a fake
`engine_has` at the seam make_layers takes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smenv.docker import model_layers
from smenv.docker.layers import Entry, tree_entries
from smenv.model.digest import model_digest

HISTORY = "the rest"


@pytest.fixture
def model(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(model_layers, "BIG_FILE", 2 << 20)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "model"
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(b"pb" * 100)
    for name, size in (("variables/variables.data-00000-of-00001", 3 << 20), ("assets.bin", 5 << 20)):
        (root / name).write_bytes(os.urandom(size))
        os.utime(root / name, (1_600_000_000, 1_600_000_000))  # old enough for the stat cache
    return root


def entries(root: Path) -> list[Entry]:
    return [Entry("opt/smenv/smenv.json", data=b"{}\n"), *tree_entries(root, "opt/smenv/model")]


def test_each_large_file_gets_a_layer_in_path_order_then_the_rest(model):
    planned = model_layers.split(entries(model), HISTORY)
    assert [p.big.name if p.big else None for p in planned] == [
        "opt/smenv/model/assets.bin", "opt/smenv/model/variables/variables.data-00000-of-00001", None]
    assert all(p.big.name not in {e.name for e in planned[-1].entries} for p in planned[:-1])


def test_an_unchanged_large_file_on_the_engine_is_not_written_again(model, tmp_path):
    below = ("sha256:" + "1" * 64,)
    loaded: list[tuple[str, ...]] = []  # the engine's images, as layer chains
    has = lambda chain: any(image[:len(chain)] == tuple(chain) for image in loaded)  # noqa: E731

    first = model_layers.make_layers(model_layers.split(entries(model), HISTORY), below, tmp_path, has)
    assert all(m.path is not None for m in first)
    loaded.append(below + tuple(m.diff_id for m in first))

    (model / "saved_model.pb").write_bytes(b"a new graph")
    second = model_layers.make_layers(model_layers.split(entries(model), HISTORY), below, tmp_path, has)
    assert [m.path is None for m in second] == [True, True, False]
    assert [m.diff_id for m in second[:2]] == [m.diff_id for m in first[:2]]

    (model / "assets.bin").write_bytes(os.urandom(5 << 20))  # rewritten: its change time moves, the cache misses
    third = model_layers.make_layers(model_layers.split(entries(model), HISTORY), below, tmp_path, has)
    assert third[0].path is not None and third[0].diff_id != first[0].diff_id
    assert third[1].path is not None  # same file, but the layer below it is new: another chain


def test_an_engine_without_the_layers_gets_them_all(model, tmp_path):
    model_layers.make_layers(model_layers.split(entries(model), HISTORY), (), tmp_path, lambda chain: False)
    again = model_layers.make_layers(model_layers.split(entries(model), HISTORY), (), tmp_path, lambda chain: False)
    assert all(m.path is not None for m in again)


def test_the_model_digest_of_an_unchanged_large_file_is_not_read_again(model, monkeypatch):
    from smenv.model import digest

    first = model_digest(model)
    reads = []
    real = digest._read_sha256
    monkeypatch.setattr(digest, "_read_sha256", lambda path: reads.append(path.name) or real(path))
    assert model_digest(model) == first
    assert reads == ["saved_model.pb"]  # the small file only
