"""What `smenv verify` reads on the host from files it did not write: `--sample-input`, and an image that
only claims to be an smenv image (its labels, its smenv.json, what its verifier prints).

Each is fuzzed (tests/fuzz_targets.py: sample-input, image-labels, image-plan, verifier-output); these
are the cases the fuzzers found or that the fixes were written for, each pinned down. No Docker: the
engine's two answers are given directly.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fuzz_targets import CRASHES, _Image, decode_run, encode_run, real_plans
from smenv.docker.engine import SandboxRun
from smenv.errors import SampleInputError
from smenv.verify.runner import NotAnSmenvImage, _verdict, image_plan, read_plan, read_result
from smenv.verify.sample import check_sample_input

# -- --sample-input ----------------------------------------------------------------------------------------


def _npz(path: Path, compressed: bool = False, **arrays) -> Path:
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _npy(header: str, version: bytes = b"\x01\x00", body: bytes = b"") -> bytes:
    raw = header.encode() + b"\n"
    return b"\x93NUMPY" + version + len(raw).to_bytes(2, "little") + raw + body


def test_a_sample_input_numpy_wrote_is_read_from_its_headers(tmp_path):
    path = _npz(tmp_path / "s.npz", True, x=np.zeros((2, 3), "float32"), text=np.array(["a", "bc"]))
    arrays = {a.name: (a.dtype, a.shape) for a in check_sample_input(path)}
    assert arrays == {"x": ("float32", (2, 3)), "text": ("<U2", (2,))}


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda d: d / "missing.npz", "sample input not found"),
        (lambda d: d, "sample input not found (or not a file)"),
        (lambda d: (d / "a.npy").write_bytes(b"\x93NUMPY") and d / "a.npy", "is not an .npz file"),
        (lambda d: _zip(d / "e.npz", {}), "holds no arrays"),
        (lambda d: _zip(d / "n.npz", {"notes.txt": b"hi"}), "member 'notes.txt' of the sample input is not an .npy array"),
        # Found by tools/fuzz.py: an empty member name (ZipInfo.is_dir() raised IndexError).
        (lambda d: shutil.copy(CRASHES / "sample-input" / "3687d8a384ee.bin", d / "empty-name.npz") and d / "empty-name.npz",
         "member '' of the sample input is not an .npy array"),
        (lambda d: _zip(d / "magic.npz", {"x.npy": b"not numpy"}), "array 'x.npy' of the sample input has no valid .npy header"),
        # Found by tests/test_fuzz.py: numpy falls back to tokenize, which raised tokenize.TokenError.
        (lambda d: _zip(d / "paren.npz", {"x.npy": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (((, }")}),
         "has no valid .npy header"),
        (lambda d: _zip(d / "deep.npz", {"x.npy": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': " + "(" * 300 + "}")}),
         "has no valid .npy header"),
        (lambda d: _zip(d / "neg.npz", {"x.npy": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }")}),
         "has no valid .npy header"),
        (lambda d: _npz(d / "obj.npz", x=np.array([{}, None], dtype=object)), "holds Python objects (dtype object)"),
        (lambda d: _zip(d / "short.npz", {"x.npy": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1000,), }")}),
         "is cut short"),
        (lambda d: (d / "t.npz").write_bytes(_npz(d / "full.npz", x=np.zeros(4)).read_bytes()[:-30]) and d / "t.npz",
         "not an .npz file"),
    ],
)
def test_a_sample_input_that_cannot_be_used_is_a_usage_error(tmp_path, make, words):
    path = make(tmp_path)
    with pytest.raises(SampleInputError) as info:
        check_sample_input(path)
    assert info.value.exit_code == 2 and info.value.path == str(path)
    assert words in info.value.message and "\n" not in info.value.message, info.value.message


def test_a_sample_input_zip_bomb_costs_only_its_headers(tmp_path):
    """A member declaring gigabytes: only the header is read, through a bounded stream."""
    big = np.zeros((1,), "float32")
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (1 << 28,)})
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("x.npy", "w", force_zip64=True) as member:
            member.write(buf.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(1 << 10):  # 1 GiB of zeros, a megabyte or so on disk
                member.write(chunk)
    assert (tmp_path / "bomb.npz").stat().st_size < 8 << 20
    (array,) = check_sample_input(tmp_path / "bomb.npz")
    assert array.shape == (1 << 28,) and big.dtype.name == array.dtype


# -- an image that claims to be an smenv image -------------------------------------------------------------

PLAN = real_plans()[0]


def test_the_labels_must_say_smenv():
    with pytest.raises(NotAnSmenvImage, match="no org.smenv.version label") as info:
        image_plan(_Image({"org.opencontainers.image.title": "x"}, json.dumps(PLAN).encode()), "img")
    assert info.value.exit_code == 6
    assert image_plan(_Image({"org.smenv.version": "anything"}, json.dumps(PLAN).encode()), "img") == PLAN


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "is not valid JSON"),
        (b"\xff\xfe\x00", "is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "is not valid JSON"),  # RecursionError
        (b"1" * 5000, "is not valid JSON"),  # more digits than int() converts
        (b"[]", "is not a JSON object"),
        (b'{"model": {}, "environment": {}}', "has no 'image' object"),
        (json.dumps({**PLAN, "image": {**PLAN["image"], "code": [None]}}).encode(), "image.code[0] has the wrong type"),
        # Found by tools/fuzz.py: a null custom object reached diagnosis (AttributeError on None.get).
        (json.dumps({**PLAN, "model": {**PLAN["model"], "custom_objects": [None]}}).encode(), "model.custom_objects[0]"),
        (json.dumps({**PLAN, "environment": {**PLAN["environment"], "tensorflow_version": ["2.15.1"]}}).encode(),
         "environment.tensorflow_version has the wrong type"),
        (json.dumps({**PLAN, "lock": {"packages": {"numpy": 1}}}).encode(), "lock.packages['numpy'] has the wrong type"),
        (json.dumps({**PLAN, "lock": {"packages": ["numpy"]}}).encode(), "lock.packages has the wrong type"),
    ],
)
def test_an_smenv_json_smenv_did_not_write_is_not_an_smenv_image(data, words):
    with pytest.raises(NotAnSmenvImage) as info:
        read_plan("img", data)
    assert info.value.exit_code == 6 and words in info.value.message, info.value.message
    assert "\n" not in info.value.message and len(info.value.message) < 300


def test_every_plan_smenv_writes_is_read_back_as_it_is():
    for plan in real_plans():
        assert read_plan("img", json.dumps(plan).encode()) == plan
    dry = {k: v for k, v in PLAN.items() if k != "lock"}  # older or dry-run plans: nulls and missing keys
    dry["image"] = {**dry["image"], "code": None}
    assert read_plan("img", json.dumps(dry).encode()) == dry


@pytest.mark.parametrize(
    "line",
    [
        "SMENV_RESULT []",
        'SMENV_RESULT "ok"',
        'SMENV_RESULT {"ok": "yes"}',
        'SMENV_RESULT {"ok": false, "stage": ["load"]}',
        'SMENV_RESULT {"ok": false, "error": "boom"}',
        'SMENV_RESULT {"ok": false, "error": {"message": 3}}',
        'SMENV_RESULT {"ok": true, "signatures": [null]}',
        'SMENV_RESULT {"ok": true, "signatures": [{"primary": true}]}',
        'SMENV_RESULT {"ok": true, "signatures": [{"name": "s", "outputs": [{"name": "y"}]}]}',
        'SMENV_RESULT {"ok": true, "gpus": [1]}',
        # Found by make fuzz (tests/fuzz_crashes/verifier-output): the console reads these with .get(key, default).
        'SMENV_RESULT {"ok": true, "timings": null}',
        'SMENV_RESULT {"ok": true, "signatures": null}',
        'SMENV_RESULT {"ok": true, "gpus": null}',
        'SMENV_RESULT {"ok": true, "signatures": [{"name": "s", "outputs": null}]}',
        "SMENV_RESULT " + "[" * 100_000,
    ],
)
def test_a_verifier_result_of_another_shape_counts_as_no_result(line):
    assert read_result("log line\n" + line + "\n") is None
    verdict = _verdict("img", PLAN, SandboxRun(0, line + "\n", "", False, False, 1.0))
    assert not verdict.ok and verdict.exit_code != 1 and verdict.diagnosis is not None


def test_a_verifier_result_in_the_shape_it_writes_is_kept():
    run = decode_run(encode_run(0, b"SMENV_RESULT " + json.dumps({
        "ok": True, "stage": "done", "python": "3.11.2", "tensorflow": "2.15.1", "timings": {"load_s": 0.1}, "gpus": [],
        "signatures": [{"name": "serving_default", "primary": True, "seconds": 0.01,
                        "outputs": [{"name": "y", "dtype": "float32", "shape": [None, 1]},
                                    {"name": "z", "dtype": "string", "shape": None}]}]}).encode() + b"\n", b""))  # unknown rank
    verdict = _verdict("img", PLAN, run)
    assert verdict.ok and verdict.result["signatures"][0]["outputs"][0]["shape"] == [None, 1]
