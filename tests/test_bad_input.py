"""Bad input: one line naming the file and the problem, a documented exit code, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import pytest

import pbwrite
from smenv.errors import InvalidModel, ModelNotFound, UnsafeModel
from smenv.model.inspect import inspect_model

EXIT = {ModelNotFound: 3, InvalidModel: 4, UnsafeModel: 5}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smenv", *args], capture_output=True, text=True, timeout=60)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, path: Path, words: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("smenv: error: ")
    assert str(path) in lines[0]
    assert words in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def make_saved_model(d: Path, data: bytes) -> Path:
    (d / "saved_model.pb").write_bytes(data)
    return d


def good_saved_model() -> bytes:
    return pbwrite.saved_model(pbwrite.meta_graph(["serve"], nodes=[pbwrite.node("Placeholder"), pbwrite.node("Add")]))


CASES = {
    "missing path": (lambda d: d / "nope", ModelNotFound, "no such file or directory"),
    "empty directory": (lambda d: d, ModelNotFound, "directory is empty"),
    "directory without a model": (
        lambda d: (d / "readme.txt").write_text("hi") and d,
        ModelNotFound,
        "no model here",
    ),
    "truncated saved_model.pb": (
        lambda d: make_saved_model(d, good_saved_model()[:-7]),
        InvalidModel,
        "not a valid SavedModel protobuf",
    ),
    "random saved_model.pb": (
        lambda d: make_saved_model(d, bytes(range(256)) * 8),
        InvalidModel,
        "SavedModel",
    ),
    "empty saved_model.pb": (lambda d: make_saved_model(d, b""), InvalidModel, "holds no meta graph"),
    "keras that is not a zip": (
        lambda d: (d / "m.keras").write_bytes(b"this is not a zip file") and d / "m.keras",
        InvalidModel,
        "not a zip",
    ),
    "unknown file": (
        lambda d: (d / "m.bin").write_bytes(b"\0" * 64) and d / "m.bin",
        ModelNotFound,
        "not a model file",
    ),
}


def _traversal_keras(d: Path) -> Path:
    p = d / "evil.keras"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("../../outside.txt", "x")
    return p


def _json_bomb_keras(d: Path) -> Path:
    p = d / "bomb.keras"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", "{}")
        with zf.open("config.json", "w") as member:
            block = b" " * (1 << 20)
            for _ in range(70):  # 70 MiB of spaces, a few hundred kilobytes compressed
                member.write(block)
    return p


def _gigabyte_bomb_keras(d: Path) -> Path:
    p = d / "gigabomb.keras"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("config.json", "{}")
        with zf.open("model.weights.h5", "w", force_zip64=True) as member:
            block = b"\0" * (8 << 20)
            for _ in range(160):  # 1.25 GiB of zeros
                member.write(block)
    return p


def _h5_without_keras(d: Path) -> Path:
    p = d / "plain.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("data", data=[1, 2, 3])
    return p


def _h5_truncated(d: Path) -> Path:
    p = d / "cut.h5"
    with h5py.File(p, "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.create_dataset("data", data=list(range(1000)))
    p.write_bytes(p.read_bytes()[:300])
    return p


CASES.update(
    {
        "keras with ../ member": (_traversal_keras, UnsafeModel, "path traversal"),
        "keras whose config inflates past the limit": (_json_bomb_keras, UnsafeModel, "inflates beyond"),
        "keras inflating to gigabytes": (_gigabyte_bomb_keras, UnsafeModel, "zip bomb"),
        "h5 with no Keras attributes": (_h5_without_keras, InvalidModel, "no Keras attributes"),
        "truncated h5": (_h5_truncated, InvalidModel, "not a readable HDF5 file"),
    }
)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_raises_typed_error(name, tmp_model_dir):
    make, error, words = CASES[name]
    path = make(tmp_model_dir)
    with pytest.raises(error) as info:
        inspect_model(path)
    assert type(info.value) is error
    assert words in info.value.message


@pytest.mark.parametrize("name", ["missing path", "truncated saved_model.pb", "keras with ../ member", "h5 with no Keras attributes"])
def test_bad_input_on_the_command_line(name, tmp_model_dir):
    make, error, words = CASES[name]
    path = make(tmp_model_dir)
    proc = run_cli("inspect", str(path))
    shown = path if error is not InvalidModel or path.is_file() else path / "saved_model.pb"
    assert_one_line_error(proc, EXIT[error], shown, words)


def test_json_mode_reports_the_error_as_json(tmp_model_dir):
    proc = run_cli("inspect", str(tmp_model_dir / "missing"), "--json")
    assert proc.returncode == 3
    data = json.loads(proc.stdout)
    assert data["ok"] is False and data["error"]["kind"] == "model_not_found"
    assert data["error"]["path"] == str(tmp_model_dir / "missing")


def test_unknown_model_version_lists_the_available_ones(tmp_model_dir):
    (tmp_model_dir / "7").mkdir()
    make_saved_model(tmp_model_dir / "7", good_saved_model())
    with pytest.raises(ModelNotFound, match=r"no version 3 here \(versions: 7\)"):
        inspect_model(tmp_model_dir, version=3)


def test_unknown_tags_list_the_available_ones(tmp_model_dir):
    make_saved_model(tmp_model_dir, good_saved_model())
    with pytest.raises(ModelNotFound, match=r"no meta graph tagged train \(available: serve\)"):
        inspect_model(tmp_model_dir, tags=("train",))


def test_chunked_savedmodel_is_refused_clearly(tmp_model_dir):
    (tmp_model_dir / "saved_model.cpb").write_bytes(b"\0" * 16)
    with pytest.raises(InvalidModel, match="chunked SavedModel"):
        inspect_model(tmp_model_dir)


def test_a_well_formed_synthetic_model_reads(tmp_model_dir):
    # The control case for the corrupt variants above.
    p = make_saved_model(tmp_model_dir, good_saved_model())
    assert inspect_model(p).ops == {"Add": 1, "Placeholder": 1}
