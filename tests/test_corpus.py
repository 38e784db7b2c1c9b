"""Every third-party SavedModel in ../shared/corpus reads with the facts its README gives."""

from __future__ import annotations

import pytest

from conftest import CORPUS, corpus_table, literal
from smenv.model.inspect import inspect_model

ROWS = corpus_table()


def test_corpus_table_is_complete():
    dirs = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert {row["dir"] for row in ROWS} == dirs


@pytest.mark.parametrize("row", ROWS, ids=[r["dir"] for r in ROWS])
def test_corpus_model_facts(row):
    facts = inspect_model(CORPUS / row["dir"])
    assert facts.tensorflow_version == row["producer tensorflow_version"]
    stored_git = literal(row["tensorflow_git_version as stored"])
    expected_git = stored_git[2:-1] if stored_git.startswith("b'") else stored_git
    assert facts.tensorflow_git_version == expected_git
    expected_tags = set(row["tags"].split(","))
    primary = [mg for mg in facts.meta_graphs if set(mg.tags) == expected_tags]
    assert primary, f"no meta graph tagged {expected_tags}: {facts.meta_graphs}"
    assert facts.ops, "every SavedModel uses some ops"
    assert facts.digest.startswith("sha256:") and facts.size_bytes > 0


def test_version_directory_picks_highest_and_says_so():
    facts = inspect_model(CORPUS / "tfserving-half-plus-two-2-versions")
    assert facts.model_root.endswith("00000124")
    assert any("00000123, 00000124" in n and "highest" in n for n in facts.notes)
    older = inspect_model(CORPUS / "tfserving-half-plus-two-2-versions", version=123)
    assert older.model_root.endswith("00000123")


def test_tf_text_ops_found_only_in_function_library():
    facts = inspect_model(CORPUS / "tfserving-tf-text-regression")
    text = {p.name: p for p in facts.companion_packages}["tensorflow-text"]
    for op in ("CaseFoldUTF8", "NormalizeUTF8", "WordpieceTokenizeWithOffsets", "SentencepieceOp"):
        assert facts.ops[op] >= 1
        assert any(op in ev for ev in text.evidence)
    assert "StatefulPartitionedCall" in facts.ops
    # Library function names are calls, not ops.
    assert not any(op.startswith("__inference_") for op in facts.ops)


def test_signatures_with_dtypes_and_shapes():
    facts = inspect_model(CORPUS / "tfrust-keras-multi-input")
    sig = {s.name: s for s in facts.signatures}["serving_default"]
    assert len(sig.inputs) == 2
    assert all(i.dtype == "float32" for i in sig.inputs)
    facts = inspect_model(CORPUS / "tfrust-regression-savedmodel")
    assert {"train", "w", "b"} <= {s.name for s in facts.signatures}
    assert "serving_default" not in {s.name for s in facts.signatures}


def test_keras_savedmodel_before_keras_metadata_pb():
    # TF 2.3 kept the Keras metadata inside the object graph; no keras_metadata.pb exists.
    facts = inspect_model(CORPUS / "tfx-keras-serving")
    assert facts.format == "keras-savedmodel"
    assert facts.keras_version == "2.4.0"
    assert facts.layers["Dense"] == 3
    custom = {o.class_name: o for o in facts.custom_objects}
    assert custom["TransformFeaturesLayer"].registered_name == "TensorFlowTransform>TransformFeaturesLayer"
    assert "tensorflow-transform" in {p.name for p in facts.companion_packages}


def test_non_serve_graph_is_read_with_a_note():
    facts = inspect_model(CORPUS / "tfx-estimator-eval-nightly")
    assert facts.meta_graphs[0].tags == ("eval",)
    assert any("no meta graph is tagged 'serve'" in n for n in facts.notes)


def test_digest_is_stable_across_copies(tmp_path):
    import shutil

    src = CORPUS / "tfx-keras-serving"
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    assert inspect_model(copy).digest == inspect_model(src).digest
    (copy / "variables" / "variables.index").write_bytes(b"changed")
    assert inspect_model(copy).digest != inspect_model(src).digest
