"""The readers against models made by real TensorFlow/Keras releases (tests/fixtures), whose facts
were recorded by asking TensorFlow itself (tests/fixtures/models/EXPECTED.json)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES
from smenv.model.inspect import inspect_model

MODELS = FIXTURES / "models"
EXPECTED = json.loads((MODELS / "EXPECTED.json").read_text())
FORMAT = {"savedmodel": ("savedmodel", "keras-savedmodel"), "keras": ("keras",), "h5": ("h5",)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_facts(name):
    exp = EXPECTED[name]
    facts = inspect_model(MODELS / name)
    assert facts.format in FORMAT[exp["format"]]
    assert facts.weights_only is exp["weights_only"]
    if exp["format"] == "savedmodel":
        assert facts.tensorflow_version == exp["tensorflow_version"]
    else:  # Keras files record no TensorFlow version, only Keras's
        assert facts.tensorflow_version is None
        assert facts.keras_version == exp["keras_version"]
    if facts.format == "keras-savedmodel":
        assert facts.keras_version == exp["keras_version"]


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if e["format"] == "savedmodel"))
def test_fixture_signatures_match_tensorflow(name):
    facts = inspect_model(MODELS / name)
    ours = {s.name: s for s in facts.signatures}
    for sig_name, sig in EXPECTED[name]["signatures"].items():
        for side in ("inputs", "outputs"):
            got = {t.name: (t.dtype, list(t.shape) if t.shape is not None else None) for t in getattr(ours[sig_name], side)}
            want = {k: (v["dtype"], v["shape"]) for k, v in sig[side].items()}
            assert got == want, (sig_name, side)


@pytest.mark.parametrize(
    "name", sorted(n for n, e in EXPECTED.items() if e.get("keras_model") and e["format"] != "savedmodel" and not e["weights_only"])
)
def test_fixture_keras_inputs_from_config(name):
    facts = inspect_model(MODELS / name)
    (sig,) = facts.signatures
    want = [(i["name"], i["dtype"], i["shape"]) for i in EXPECTED[name]["keras_model"]["inputs"]]
    assert [(t.name, t.dtype, list(t.shape)) for t in sig.inputs] == want
    assert [t.name for t in sig.outputs] == [o["name"] for o in EXPECTED[name]["keras_model"]["outputs"]]


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if e["custom_objects"]))
def test_fixture_custom_objects(name):
    facts = inspect_model(MODELS / name)
    found = {(o.class_name, o.registered_name): o for o in facts.custom_objects if o.kind == "class"}
    for want in EXPECTED[name]["custom_objects"]:
        obj = found.pop((want["class_name"], want["registered_name"]))
        # Only the new serialisation (.keras) records a custom class's module; legacy ones do not.
        assert obj.module == (want["module"] if facts.format == "keras" else None)
    assert not found, f"built-ins reported as custom: {found}"


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if not e["custom_objects"] and "lambda" not in n))
def test_builtin_only_models_report_no_custom_objects(name):
    assert inspect_model(MODELS / name).custom_objects == ()


def test_text_model_needs_tensorflow_text():
    facts = inspect_model(MODELS / "tf215-text-savedmodel")
    (text,) = facts.companion_packages
    assert text.name == "tensorflow-text"
    for op in EXPECTED["tf215-text-savedmodel"]["companion_ops"]:
        assert facts.ops[op] >= 1 and any(op in e for e in text.evidence)


def test_weights_only_h5_is_flagged_with_advice():
    facts = inspect_model(MODELS / "tf215-weights.h5")
    assert facts.weights_only and any("model.save" in n for n in facts.notes)


def test_lambda_is_reported_and_never_executed(tmp_path):
    marker = Path("/tmp/smenv-lambda-was-executed")
    marker.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "smenv", "inspect", str(MODELS / "tf218-keras3-lambda.keras"), "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert any(o["kind"] == "lambda" for o in data["custom_objects"])
    assert any("bytecode" in n for n in data["notes"])
    assert not marker.exists()
    # Resolving an environment for it reads the same config: still nothing runs on the host.
    proc = subprocess.run(
        [sys.executable, "-m", "smenv", "generate", str(MODELS / "tf218-keras3-lambda.keras"), "--dry-run", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()


def test_inspect_never_imports_tensorflow():
    probe = (
        "import sys; from pathlib import Path; from smenv.model.inspect import inspect_model; "
        f"[inspect_model(p) for p in Path({str(MODELS)!r}).iterdir() if p.name[:2] == 'tf']; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_text_format_savedmodel_reads_like_the_binary_one():
    binary = inspect_model(MODELS / "tf215-savedmodel")
    text = inspect_model(MODELS / "tf215-savedmodel-pbtxt")
    assert text.tensorflow_version == binary.tensorflow_version == "2.15.1"
    assert text.tensorflow_git_version == binary.tensorflow_git_version
    assert text.meta_graphs == binary.meta_graphs
    assert text.signatures == binary.signatures
    assert text.ops == binary.ops
