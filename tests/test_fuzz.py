"""Fuzzing every reader of user input, briefly (CI); `make fuzz` runs the same targets for minutes.

The targets, their generators and the property are in tests/fuzz_targets.py. Property, for every input:
either success, or a `SmenvError` subclass (which the CLI turns into one line and a documented exit
code). Never another exception (the CLI would call it an internal error), never a hang, and nothing
written anywhere but the example's own directory under tmp_path.

Bounded for CI: each target runs SMENV_FUZZ_EXAMPLES examples (default 100; the host-side readers of
what an image or `--sample-input` holds a quarter of that; the whole file takes well under a minute).
For a longer run by hand: `make fuzz` (tools/fuzz.py: minutes per target, coverage-guided with atheris
where that finds more), or `SMENV_FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest tests/test_fuzz.py`.
The example database is off so CI runs are reproducible from the seed hypothesis prints on failure.

Every crash the fuzzers found is kept: `make fuzz` saves each input under tests/fuzz_crashes/<target>/,
replayed here by test_saved_crash_inputs; the ones found before it are kept at the end as minimal,
deterministic reproducers, fixed in the reader they escaped from (deep JSON, shifted zip offsets,
h5py's RuntimeError/KeyError, `===` versions, multi-line parser messages).
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zipfile
from pathlib import Path

import h5py
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_targets import (
    CRASHES, ESCAPE, H5_FIXTURES, KERAS_FIXTURES, MODELS, PBTXT, TARGETS, Sandbox, h5_with_random_attributes,
    keras_with_replaced_json, keras_zips, mutations, requirements_files,
)
from smenv.env.requirements import parse_requirements
from smenv.model.hdf5_file import HDF5_MAGIC
from smenv.model.inspect import inspect_model

EXAMPLES = int(os.environ.get("SMENV_FUZZ_EXAMPLES", "100"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # the per-example alarm bounds time; hypothesis' deadline would be flaky on 2 cores
    database=None,
    derandomize=False,
    # Health checks judge the generators, not the property; on a busy 2-core CI machine they only add noise.
    suppress_health_check=list(HealthCheck),
    print_blob=True,  # a failure prints @reproduce_failure(...) to replay it exactly
)
# The readers of what an image holds and of --sample-input are small and `make fuzz` runs them for
# minutes; in CI a quarter of the examples keeps the file's time where it was.
FUZZ_SMALL = settings(FUZZ, max_examples=max(10, EXAMPLES // 4))


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """tmp_path/work is the cwd and tempfile's directory; the walls are checked after every example."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "tmp").mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(work / "tmp"))
    session_root = tmp_path.parent  # this test's siblings: nothing may appear beside tmp_path either
    outside_before = {p.name for p in session_root.iterdir()}
    yield Sandbox(tmp_path, work)
    assert {p.name for p in session_root.iterdir()} == outside_before
    assert not list(Path("/tmp").glob(f"*{ESCAPE}*"))


# -- .keras ----------------------------------------------------------------------------------------------


@FUZZ
@given(data=keras_zips())
def test_keras_reader_on_random_archives(sandbox, data):
    TARGETS["keras"].run(sandbox, data)


@FUZZ
@given(which=st.sampled_from(KERAS_FIXTURES), data=st.data())
def test_keras_reader_on_mutated_fixtures(sandbox, which, data):
    sandbox.inspect_file(which.name, data.draw(mutations(which.read_bytes())))


@FUZZ
@given(data=keras_with_replaced_json())
def test_keras_reader_on_fixtures_with_replaced_json(sandbox, data):
    """Real archives (weights and all) whose config.json / metadata.json are replaced by anything."""
    TARGETS["keras"].run(sandbox, data)


# -- .h5 -------------------------------------------------------------------------------------------------


@FUZZ
@given(tail=st.binary(max_size=4096), suffix=st.sampled_from([".h5", ".hdf5", ".bin"]))
def test_h5_reader_on_random_bytes_with_the_magic(sandbox, tail, suffix):
    sandbox.inspect_file(f"model{suffix}", HDF5_MAGIC + tail)


@FUZZ
@given(which=st.sampled_from(H5_FIXTURES), data=st.data())
def test_h5_reader_on_mutated_fixtures(sandbox, which, data):
    sandbox.inspect_file(which.name, data.draw(mutations(which.read_bytes())))


@FUZZ
@given(data=h5_with_random_attributes())
def test_h5_reader_on_files_with_random_attributes(sandbox, data):
    TARGETS["h5"].run(sandbox, data)


# -- SavedModel ------------------------------------------------------------------------------------------


def _copy_model(src: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(src, dest)
    return dest


@FUZZ
@given(which=st.sampled_from(["tf215-savedmodel", "tf212-keras2-savedmodel", "tf218-savedmodel"]), data=st.data())
def test_savedmodel_reader_on_mutated_saved_model_pb(sandbox, which, data):
    original = (MODELS / which / "saved_model.pb").read_bytes()
    damaged = data.draw(mutations(original))
    case = sandbox.case()
    model = _copy_model(MODELS / which, case / "model")
    (model / "saved_model.pb").write_bytes(damaged)
    sandbox.check(case, lambda: inspect_model(model))


@FUZZ
@given(data=st.data())
def test_savedmodel_reader_on_mutated_keras_metadata(sandbox, data):
    src = MODELS / "tf212-keras2-savedmodel"
    TARGETS["keras-metadata"].run(sandbox, data.draw(mutations((src / "keras_metadata.pb").read_bytes())))


@FUZZ
@given(data=st.binary(max_size=2048), name=st.sampled_from(["saved_model.pb", "saved_model.pbtxt"]))
def test_savedmodel_reader_on_random_bytes(sandbox, data, name):
    case = sandbox.case()
    model = case / "model"
    model.mkdir()
    (model / name).write_bytes(data)
    sandbox.check(case, lambda: inspect_model(model))


@FUZZ
@given(data=st.data())
def test_savedmodel_reader_on_mutated_pbtxt(sandbox, data):
    TARGETS["saved-model-pbtxt"].run(sandbox, data.draw(mutations(PBTXT[0].read_bytes())))


# -- requirements files ----------------------------------------------------------------------------------


@FUZZ
@given(data=requirements_files())
def test_requirements_files_with_includes_constraints_links_and_index_options(sandbox, data):
    """A main file and the files it includes (-r, -c), links (-f) and wheels, parsed then resolved."""
    TARGETS["requirements"].run(sandbox, data)


# -- --sample-input, and an image that claims to be an smenv image --------------------------------------


@FUZZ_SMALL
@given(data=st.data())
def test_sample_input_reader(sandbox, data):
    TARGETS["sample-input"].run(sandbox, data.draw(TARGETS["sample-input"].inputs()))


@FUZZ_SMALL
@given(data=st.data())
def test_model_builder_and_the_module_it_names(sandbox, data):
    TARGETS["model-builder"].run(sandbox, data.draw(TARGETS["model-builder"].inputs()))


@FUZZ_SMALL
@given(data=st.data())
def test_smenv_json_read_back_from_an_image(sandbox, data):
    TARGETS["image-plan"].run(sandbox, data.draw(TARGETS["image-plan"].inputs()))


@FUZZ_SMALL
@given(data=st.data())
def test_labels_of_an_image_given_to_verify(sandbox, data):
    TARGETS["image-labels"].run(sandbox, data.draw(TARGETS["image-labels"].inputs()))


@FUZZ_SMALL
@given(data=st.data())
def test_what_the_verifier_in_an_image_prints(sandbox, data):
    TARGETS["verifier-output"].run(sandbox, data.draw(TARGETS["verifier-output"].inputs()))


@FUZZ_SMALL
@given(data=st.data())
def test_requests_to_the_served_api(sandbox, data):
    TARGETS["serve-request"].run(sandbox, data.draw(TARGETS["serve-request"].inputs()))


@FUZZ_SMALL
@given(data=st.data())
def test_metadata_of_a_pulled_base_image(sandbox, data):
    TARGETS["base-image-metadata"].run(sandbox, data.draw(TARGETS["base-image-metadata"].inputs()))


@FUZZ_SMALL
@given(data=st.data())
def test_registry_answers_relayed_by_the_engine(sandbox, data):
    TARGETS["registry-answers"].run(sandbox, data.draw(TARGETS["registry-answers"].inputs()))


# -- inputs `make fuzz` found crashing (tests/fuzz_crashes/<target>/), each replayed through its target ----

SAVED_CRASHES = sorted(CRASHES.glob("*/*.bin"))


@pytest.mark.parametrize("path", SAVED_CRASHES, ids=[f"{p.parent.name}/{p.name}" for p in SAVED_CRASHES])
def test_saved_crash_inputs(sandbox, path, monkeypatch):
    from smenv.model import hdf5_file

    monkeypatch.setattr(hdf5_file, "READ_SECONDS", 1)  # the HDF5 hang ends at the limit, whatever it is: keep CI fast
    assert path.parent.name in TARGETS, f"{path}: no target {path.parent.name!r} (tests/fuzz_targets.py)"
    TARGETS[path.parent.name].run(sandbox, path.read_bytes())


# -- crashes found by the fuzzing above, kept until fixed -------------------------------------------------
# Each reproducer is minimal and deterministic: a crash the fuzzers found, fixed in its reader.
# None of these files is this test's to change (smenv/model/*.py, smenv/env/requirements.py).

DEEP = 100_000  # far past Python's recursion limit; json.loads recurses once per nesting level


def _deep_keras(path: Path, member: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        if member != "config.json":
            zf.writestr("config.json", "{}")
        zf.writestr(member, "[" * DEEP + "]" * DEEP)
    return path


@pytest.mark.parametrize("member", ["config.json", "metadata.json"])
def test_deeply_nested_json_in_a_keras_archive_is_invalid_model(tmp_path, member):
    from smenv.errors import InvalidModel

    with pytest.raises(InvalidModel):
        inspect_model(_deep_keras(tmp_path / "deep.keras", member))


def test_deeply_nested_model_config_in_an_h5_file_is_invalid_model(tmp_path):
    from smenv.errors import InvalidModel

    path = tmp_path / "deep.h5"
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["model_config"] = "[" * DEEP + "]" * DEEP
    with pytest.raises(InvalidModel):
        inspect_model(path)


def test_deeply_nested_keras_metadata_is_invalid_model(tmp_path):
    import shutil

    import pbwrite
    from smenv.errors import InvalidModel
    from smenv.model.tfschema import numbers

    model = tmp_path / "model"
    shutil.copytree(MODELS / "tf215-savedmodel", model)
    deep = ("[" * DEEP + "]" * DEEP).encode()
    obj, meta = numbers("KerasSavedObject"), numbers("SavedMetadata")
    node = pbwrite.field_bytes(obj["identifier"], b"_tf_keras_model") + pbwrite.field_bytes(obj["metadata"], deep)
    (model / "keras_metadata.pb").write_bytes(pbwrite.field_bytes(meta["nodes"], node))
    with pytest.raises(InvalidModel):
        inspect_model(model)


def test_the_cli_reports_the_deep_json_crash_in_one_line_without_a_traceback(tmp_path):
    """The CLI's side of the deep-JSON crash: exit 4 (invalid model) in one line, no traceback."""
    import subprocess
    import sys

    path = _deep_keras(tmp_path / "deep.keras", "config.json")
    proc = subprocess.run([sys.executable, "-m", "smenv", "inspect", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_keras_archive_with_shifted_offsets_is_invalid_model(tmp_path):
    from smenv.errors import InvalidModel

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", "{}")
    path = tmp_path / "shifted.keras"
    path.write_bytes(buf.getvalue()[1:])
    with pytest.raises(InvalidModel):
        inspect_model(path)


def test_keras_archive_whose_local_header_claims_a_utf8_name_it_lacks_is_invalid_model(tmp_path):
    """Found by the long run: zipfile decodes the local header's name as UTF-8 when flag bit 11 says so."""
    from smenv.errors import InvalidModel

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", "{}")
    data = bytearray(buf.getvalue())
    data[6:8] = struct.pack("<H", 0x0800)  # the local header's flags: the name is UTF-8
    data[30] = 0xF2  # ... and its first byte is not
    path = tmp_path / "badname.keras"
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidModel):
        inspect_model(path)


def _flip(src: Path, dest: Path, offset: int | None = None, old: bytes = b"", new: bytes = b"") -> Path:
    data = bytearray(src.read_bytes())
    if offset is not None:
        data[offset] ^= 0x40
    else:
        data = bytearray(bytes(data).replace(old, new, 1))
    dest.write_bytes(bytes(data))
    return dest


@pytest.mark.parametrize("damage", ["SNOD signature (RuntimeError)", "object header byte 112 (KeyError)"])
def test_h5_with_damaged_structures_is_invalid_model(tmp_path, damage):
    from smenv.errors import InvalidModel

    src = MODELS / "tf215-full.h5"
    if damage.startswith("SNOD"):
        path = _flip(src, tmp_path / "damaged.h5", old=b"SNOD", new=b"SNOE")
    else:
        path = _flip(src, tmp_path / "damaged.h5", offset=112)
    with pytest.raises(InvalidModel):
        inspect_model(path)


def test_arbitrary_equality_requirement_is_not_a_crash(tmp_path):
    from smenv.errors import RequirementsError

    req = tmp_path / "requirements.txt"
    req.write_text("a===weird\n")
    try:
        parse_requirements(req)
    except RequirementsError:
        pass


def test_unparsable_requirement_gives_a_one_line_message(tmp_path):
    from smenv.errors import RequirementsError

    req = tmp_path / "requirements.txt"
    req.write_text("numpy==\n")
    with pytest.raises(RequirementsError) as caught:
        parse_requirements(req)
    assert "\n" not in caught.value.message


def test_the_cli_prints_an_unparsable_requirement_as_one_line(tmp_path):
    """Fixed in smenv/cli.py: whatever the core's message, the CLI prints one line (README, "Exit codes")."""
    import subprocess
    import sys

    req = tmp_path / "requirements.txt"
    req.write_text("numpy==\n")
    proc = subprocess.run(
        [sys.executable, "-m", "smenv", "generate", str(MODELS / "tf215-savedmodel"), "-r", str(req), "--dry-run"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 7, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("smenv: ") or "error" in line]
    assert len(errors) == 1 and errors[0].startswith("smenv: error: "), proc.stderr
    assert "numpy==" in errors[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA, zipfile.ZIP_BZIP2])
def test_keras_archive_with_a_corrupt_compressed_member_is_invalid_model(tmp_path, compression):
    """Found by tools/fuzz.py: a corrupt LZMA stream raised lzma.LZMAError (deflate: zlib.error), not caught."""
    from smenv.errors import InvalidModel

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        zf.writestr("config.json", '{"class_name": "Sequential", "config": {"layers": []}}' * 20)
    data = bytearray(buf.getvalue())
    start = 30 + len("config.json")  # the member's data, after its local header
    data[start + 8:start + 24] = b"\xff" * 16
    path = tmp_path / "corrupt.keras"
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidModel, match="damaged .keras archive"):
        inspect_model(path)


def test_an_h5_file_the_hdf5_library_loops_on_is_invalid_model(tmp_path, monkeypatch):
    """Found by tools/fuzz.py: reading one attribute of this 17 KB file never returned (a loop in C code)."""
    from smenv.errors import InvalidModel
    from smenv.model import hdf5_file

    monkeypatch.setattr(hdf5_file, "READ_SECONDS", 1)
    with pytest.raises(InvalidModel, match=r"not a readable HDF5 file \(it did not finish in 1 s\): the file is damaged"):
        inspect_model(CRASHES / "h5" / "a6d2be197d1a.bin")


def test_an_h5_file_that_asks_for_gigabytes_is_invalid_model_without_taking_them(tmp_path):
    """Found by tools/fuzz.py: a variable-length attribute whose heap entry claims gigabytes; the reader
    took 4.2 GB before failing. It now reads in a child limited to 1 GiB more than it inherits."""
    import resource

    from smenv.errors import InvalidModel

    with pytest.raises(InvalidModel, match="not a readable HDF5 file"):
        inspect_model(CRASHES / "h5" / "6cc468703b10.bin")
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 2 << 20  # KiB: the child stayed under 2 GiB


@pytest.mark.parametrize("where", ["graph_def", "object_graph_def", "signature key", "signature def", "tensor info",
                                   "tensor shape", "function name"])
def test_saved_model_with_a_varint_where_a_message_belongs_is_read_as_if_the_field_were_absent(tmp_path, where):
    """Found by tools/fuzz.py (tests/fuzz_crashes/saved-model-pb): `'int' object has no attribute ...`."""
    import pbwrite
    from smenv.model.tfschema import numbers

    mg, sm = numbers("MetaGraphDef"), numbers("SavedModel")
    v = pbwrite.field_varint
    sig_entry = lambda key, sig: pbwrite.field_bytes(mg["signature_def"], key + sig)  # noqa: E731
    body = {
        "graph_def": v(mg["graph_def"], 7),
        "object_graph_def": v(mg["object_graph_def"], 7),
        "signature key": sig_entry(v(1, 7), pbwrite.field_bytes(2, b"")),
        "signature def": sig_entry(pbwrite.field_bytes(1, "serving_default"), v(2, 7)),
        "tensor info": sig_entry(pbwrite.field_bytes(1, "serving_default"),
                                 pbwrite.field_bytes(2, pbwrite.field_bytes(1, pbwrite.field_bytes(1, "x") + v(2, 7)))),
        "tensor shape": sig_entry(pbwrite.field_bytes(1, "serving_default"), pbwrite.field_bytes(2, pbwrite.signature(
            {"x": v(numbers("TensorInfo")["tensor_shape"], 7)}, {}))),
        "function name": pbwrite.field_bytes(mg["graph_def"], pbwrite.field_bytes(
            numbers("GraphDef")["library"], pbwrite.field_bytes(1, v(numbers("FunctionDef")["signature"], 0) +
                                                                 pbwrite.field_bytes(numbers("FunctionDef")["signature"], v(1, 7))))),
    }[where]
    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(pbwrite.field_bytes(sm["meta_graphs"], body))
    facts = inspect_model(model)  # no exception; what the field would have said is simply not known
    assert facts.format
