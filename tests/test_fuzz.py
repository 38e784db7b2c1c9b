"""Fuzzing the static readers and the requirements parser with hypothesis.

Property, for every input: either success, or a `SmenvError` subclass (which the CLI turns into one
line and a documented exit code). Never another exception (the CLI would call it an internal error),
never a hang, and nothing written anywhere but the example's own directory under tmp_path.

Bounded for CI: each target runs SMENV_FUZZ_EXAMPLES examples (default 100; the whole file takes well
under a minute). For a longer run by hand: `SMENV_FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest tests/test_fuzz.py`.
The example database is off so CI runs are reproducible from the seed hypothesis prints on failure.

Every crash the fuzzers found is kept at the end as a minimal, deterministic reproducer, fixed in the
reader it escaped from (deep JSON, shifted zip offsets, h5py's RuntimeError/KeyError, `===` versions,
multi-line parser messages).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import string
import struct
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES
from smenv.env.requirements import parse_requirements
from smenv.errors import SmenvError
from smenv.model.hdf5_file import HDF5_MAGIC
from smenv.model.inspect import inspect_model
from smenv.model.keras_archive import read_keras_archive

MODELS = FIXTURES / "models"
EXAMPLES = int(os.environ.get("SMENV_FUZZ_EXAMPLES", "100"))
HANG_SECONDS = 20  # one example: a reader that takes this long on a small input is hung
# A name no reader may create: archive members point at it through ../ and absolute paths.
ESCAPE = f"smenv-fuzz-escape-{os.getpid()}"

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # the per-example alarm below bounds time; hypothesis' deadline would be flaky on 2 cores
    database=None,
    derandomize=False,
    # Health checks judge the generators, not the property; on a busy 2-core CI machine they only add noise.
    suppress_health_check=list(HealthCheck),
    print_blob=True,  # a failure prints @reproduce_failure(...) to replay it exactly
)


class Hang(Exception):
    """Raised by the alarm: deliberately not a SmenvError, so a hang fails the property."""


# -- the property ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _alarm(seconds: int):
    def fire(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st_ = p.lstat()
            out[str(p.relative_to(root))] = (st_.st_mode, st_.st_size if not p.is_dir() else 0)
    return out


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
    yield _Sandbox(tmp_path, work)
    assert {p.name for p in session_root.iterdir()} == outside_before
    assert not list(Path("/tmp").glob(f"*{ESCAPE}*"))


class _Sandbox:
    def __init__(self, tmp_path: Path, work: Path):
        self.tmp_path = tmp_path
        self.work = work
        self.count = 0

    def case(self) -> Path:
        self.count += 1
        d = self.work / f"case{self.count}" / "inner"
        d.mkdir(parents=True)
        return d

    def check(self, case: Path, call) -> object:
        """Run `call`; only success or a SmenvError may come out, fast, and nothing may be written."""
        before_case = _tree(case.parent)
        before_work = sorted(p.name for p in self.work.iterdir())
        result = None
        try:
            with _alarm(HANG_SECONDS):
                result = call()
        except SmenvError as exc:
            # The core's contract (smenv/errors.py): a one-line message.
            assert "\n" not in exc.message, exc.message
        assert _tree(case.parent) == before_case, "the reader wrote into the model's directory"
        assert sorted(p.name for p in self.work.iterdir()) == before_work, "the reader wrote into the cwd"
        assert not any((self.work / "tmp").iterdir()), "the reader left a temporary file"
        for where in (Path("/tmp"), Path("/"), self.tmp_path, self.work, case.parent.parent):
            assert not list(where.glob(f"*{ESCAPE}*")), f"the reader wrote outside: {where}"
        return result

    def inspect_file(self, name: str, data: bytes) -> Path:
        """Write `data` as model file `name` in a new case and check smenv inspect on it; the file's path."""
        case = self.case()
        path = case / name
        path.write_bytes(data)
        self.check(case, lambda: inspect_model(path))
        return path


# -- strategies -----------------------------------------------------------------------------------------

_json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
json_values = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
_keras_keys = st.sampled_from(
    ["class_name", "config", "module", "registered_name", "layers", "keras_version", "date_saved",
     "build_config", "function", "inbound_nodes", "batch_input_shape", "dtype", "name", "input_layers",
     "output_layers", "shared_object_id", "__lambda__", "__tuple__"]
)
keras_like = st.recursive(
    _json_leaf | st.sampled_from(["Sequential", "Dense", "Functional", "keras.layers", "__main__", "pkg>Name",
                                  "Lambda", "InputLayer", "2024-01-31@12:00:00", "2.15.0", "3.8.0"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keras_keys | st.text(max_size=6), inner, max_size=6),
    max_leaves=40,
)


@st.composite
def deep_json(draw) -> bytes:
    depth = draw(st.sampled_from([10, 100, 900, 5000, 60000]))
    kind = draw(st.sampled_from(["list", "dict", "config"]))
    if kind == "list":
        return ("[" * depth + "]" * depth).encode()
    if kind == "dict":
        return ('{"a":' * depth + "1" + "}" * depth).encode()
    return ('{"class_name": "X", "config": ' * depth + "{}" + "}" * depth).encode()


json_member = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    keras_like.map(lambda v: json.dumps(v).encode()),
    deep_json(),
    st.binary(max_size=300),  # not JSON at all (and often not UTF-8)
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"null", b"[]", b'"x"', b"1e999999", b"NaN", b"{" * 3, b"\xef\xbb\xbf{}", b"{}\x00"]),
)

member_names = st.one_of(
    st.sampled_from(["config.json", "metadata.json", "model.weights.h5", "model.weights.npz", "variables.h5",
                     "assets/vocab.txt", "config.json/", "dir/", "CONFIG.JSON", "config.json\\x"]),
    st.sampled_from([
        f"../{ESCAPE}", f"../../{ESCAPE}/x", f"a/../../{ESCAPE}", f"/tmp/{ESCAPE}/x", f"//{ESCAPE}",
        f"\\..\\{ESCAPE}", f"..\\..\\{ESCAPE}", f"C:/{ESCAPE}", f"C:\\{ESCAPE}", "..", "../", "./config.json",
        "assets/../../x", "/", "",
    ]),
    st.text(alphabet=string.ascii_letters + string.digits + "./\\:-_ ~\u00e9\u4e00", min_size=0, max_size=40),
)


@st.composite
def keras_zips(draw) -> bytes:
    members = draw(st.lists(st.tuples(member_names, json_member), max_size=6))
    if draw(st.booleans()):
        members.append(("config.json", draw(json_member)))
    if draw(st.booleans()):
        members.append(("metadata.json", draw(json_member)))
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members:
            if not name or name.endswith("/") and data:
                name = name + "f"
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            with contextlib.suppress(ValueError):  # duplicate-name warnings are fine; invalid names are skipped
                zf.writestr(info, data)
    data = buf.getvalue()
    if draw(st.booleans()):
        data = _declare_sizes(data, draw(st.integers(0, 2**32 - 1)), draw(st.booleans()))
    return data


def _declare_sizes(data: bytes, size: int, compressed_too: bool) -> bytes:
    """Overwrite the declared sizes in every local and central header (the zip-bomb shape)."""
    out = bytearray(data)
    for sig, usize_at, csize_at in ((b"PK\x03\x04", 22, 18), (b"PK\x01\x02", 24, 20)):
        pos = out.find(sig)
        while pos != -1:
            if pos + usize_at + 4 <= len(out):
                out[pos + usize_at:pos + usize_at + 4] = struct.pack("<I", size)
                if compressed_too:
                    out[pos + csize_at:pos + csize_at + 4] = struct.pack("<I", size)
            pos = out.find(sig, pos + 4)
    return bytes(out)


@st.composite
def mutations(draw, original: bytes) -> bytes:
    """A real file, damaged: flipped bytes, truncation, insertions, deletions, spliced-in noise."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            data += draw(st.binary(min_size=1, max_size=16))
            continue
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "duplicate", "varint"]))
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x1A, 0x22]))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "duplicate":
            data[at:at] = data[at:at + draw(st.integers(1, 256))]
        else:  # a huge length/varint where a small one was
            data[at:at] = draw(st.sampled_from([b"\xff\xff\xff\xff\x0f", b"\xff" * 10 + b"\x01", b"\x80" * 11]))
    return bytes(data)


# -- .keras ----------------------------------------------------------------------------------------------


@FUZZ
@given(data=keras_zips())
def test_keras_reader_on_random_archives(sandbox, data):
    path = sandbox.inspect_file("model.keras", data)
    sandbox.check(path.parent, lambda: read_keras_archive(path))


KERAS_FIXTURES = sorted(MODELS.glob("*.keras"))


@FUZZ
@given(which=st.sampled_from(KERAS_FIXTURES), data=st.data())
def test_keras_reader_on_mutated_fixtures(sandbox, which, data):
    sandbox.inspect_file(which.name, data.draw(mutations(which.read_bytes())))


@FUZZ
@given(which=st.sampled_from(KERAS_FIXTURES), config=json_member, metadata=json_member | st.none(),
       size=st.none() | st.integers(0, 2**32 - 1))
def test_keras_reader_on_fixtures_with_replaced_json(sandbox, which, config, metadata, size):
    """Real archives (weights and all) whose config.json / metadata.json are replaced by anything."""
    case = sandbox.case()
    path = case / which.name
    with zipfile.ZipFile(which) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename == "config.json":
                dst.writestr("config.json", config)
            elif info.filename == "metadata.json":
                if metadata is not None:
                    dst.writestr("metadata.json", metadata)
            else:
                dst.writestr(info, src.read(info))
    if size is not None:
        path.write_bytes(_declare_sizes(path.read_bytes(), size, False))
    sandbox.check(case, lambda: inspect_model(path))


# -- .h5 -------------------------------------------------------------------------------------------------


@FUZZ
@given(tail=st.binary(max_size=4096), suffix=st.sampled_from([".h5", ".hdf5", ".bin"]))
def test_h5_reader_on_random_bytes_with_the_magic(sandbox, tail, suffix):
    sandbox.inspect_file(f"model{suffix}", HDF5_MAGIC + tail)


H5_FIXTURES = sorted(MODELS.glob("*.h5"))


@FUZZ
@given(which=st.sampled_from(H5_FIXTURES), data=st.data())
def test_h5_reader_on_mutated_fixtures(sandbox, which, data):
    sandbox.inspect_file(which.name, data.draw(mutations(which.read_bytes())))


_attr_names = st.sampled_from(["keras_version", "backend", "model_config", "training_config", "layer_names"]) | st.text(
    alphabet=string.ascii_letters + "_", min_size=1, max_size=10
)


@st.composite
def attr_values(draw):
    kind = draw(st.sampled_from(
        ["str", "bytes", "json", "deep", "int", "float", "bool", "array", "strarray", "fixed", "empty", "compound",
         "vlen_bytes", "big", "complex", "enum_like", "ref"]
    ))
    if kind == "str":
        return draw(st.text(max_size=50).filter(lambda t: "\x00" not in t))
    if kind == "bytes":
        return np.void(draw(st.binary(min_size=1, max_size=50)))
    if kind == "json":
        return json.dumps(draw(keras_like))
    if kind == "deep":
        return draw(deep_json()).decode()
    if kind == "int":
        return draw(st.integers(-(2**63), 2**63 - 1))
    if kind == "float":
        return draw(st.floats())
    if kind == "bool":
        return np.bool_(draw(st.booleans()))
    if kind == "array":
        dtype = draw(st.sampled_from(["i1", "u2", "i8", "f2", "f8", "?"]))
        shape = draw(st.sampled_from([(0,), (1,), (3,), (2, 2), (1, 1, 1)]))
        return np.zeros(shape, dtype=dtype)
    if kind == "strarray":
        return [s.encode() for s in draw(st.lists(st.text(string.printable, max_size=8), min_size=1, max_size=4))]
    if kind == "fixed":
        return np.array(draw(st.binary(max_size=20)).replace(b"\x00", b"x"), dtype="S20")
    if kind == "empty":
        return h5py.Empty(draw(st.sampled_from(["f", "i", "S10"])))
    if kind == "compound":
        return np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])
    if kind == "vlen_bytes":
        return np.array([draw(st.binary(max_size=20))], dtype=h5py.vlen_dtype(bytes))
    if kind == "big":
        return "x" * draw(st.sampled_from([1 << 10, 1 << 16]))
    if kind == "complex":
        return np.complex128(1 + 2j)
    if kind == "enum_like":
        return np.array([1], dtype=h5py.enum_dtype({"A": 1, "B": 2}, basetype="i1"))
    return "ref"  # replaced by an object reference when written


@FUZZ
@given(
    attrs=st.dictionaries(_attr_names, attr_values(), max_size=6),
    groups=st.lists(st.sampled_from(["model_weights", "layers", "vars", "_layer_checkpoint_dependencies", "x"]), max_size=3),
    on_group=st.booleans(),
)
def test_h5_reader_on_files_with_random_attributes(sandbox, attrs, groups, on_group):
    case = sandbox.case()
    path = case / "model.h5"
    with h5py.File(path, "w") as f:
        for g in groups:
            f.require_group(g)
        target = f.require_group("g") if on_group else f
        for name, value in attrs.items():
            if isinstance(value, str) and value == "ref":
                value = f.ref
            try:
                target.attrs[name] = value
            except (TypeError, ValueError, OSError):
                pass  # h5py cannot store this combination: not an input a file could hold
    sandbox.check(case, lambda: inspect_model(path))


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
    damaged = data.draw(mutations((src / "keras_metadata.pb").read_bytes()))
    case = sandbox.case()
    model = _copy_model(src, case / "model")
    (model / "keras_metadata.pb").write_bytes(damaged)
    sandbox.check(case, lambda: inspect_model(model))


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
    src = MODELS / "tf215-savedmodel-pbtxt"
    damaged = data.draw(mutations((src / "saved_model.pbtxt").read_bytes()))
    case = sandbox.case()
    model = _copy_model(src, case / "model")
    (model / "saved_model.pbtxt").write_bytes(damaged)
    sandbox.check(case, lambda: inspect_model(model))


# -- requirements.txt ------------------------------------------------------------------------------------

_names = st.sampled_from(["numpy", "tensorflow", "tensorflow-cpu", "Keras", "tf_keras", "zope.interface", "a", "x-y_z"])
_specs = st.sampled_from(["", "==1.2", ">=1,<2", "~=2.15.0", "===weird", "==2.*", "!=1", "== 1.0", "==", ">=", "<<1", "@"])
_markers = st.sampled_from(["", " ; python_version < '3.12'", "; sys_platform == 'linux'", " ; bogus marker", ";", "; extra == 'x'"])
_options = st.sampled_from([
    "-r other.txt", "-c other.txt", "-r missing.txt", "-r ../../" + ESCAPE, "-r /dev/null", "-r /", "-r .", "-c",
    "-r", "--index-url https://user:secret@example.invalid/simple", "-i http://127.0.0.1:1/simple",
    "--extra-index-url https://example.invalid/simple", "--find-links ./wheels", "-f https://x.invalid/",
    "--no-index", "--pre", "--trusted-host x", "-e .", "-e git+https://x.invalid/r.git#egg=r", "--hash=sha256:00",
    "--use-feature=x", "--frobnicate", "-Z", "--", "-", "--index-url", "--prefer-binary", "--only-binary :all:",
])
_urls = st.sampled_from([
    "git+https://x.invalid/r.git#egg=r", "https://x.invalid/a-1.0-py3-none-any.whl", "./local-1.0-py3-none-any.whl",
    "file:///nonexistent/a-1.0-py3-none-any.whl", "./somedir", "a @ https://x.invalid/a.tar.gz", "a @ file:///etc",
    "hg+https://x.invalid/r#egg=r", "svn+https://x.invalid/r", "/", ".", "..", "a-1.0.tar.gz",
])


@st.composite
def requirement_lines(draw) -> str:
    kind = draw(st.sampled_from(["req", "req", "option", "url", "random", "comment", "continued", "hashes"]))
    if kind == "req":
        extras = draw(st.sampled_from(["", "[and-cuda]", "[a,b]", "[", "[]"]))
        return draw(_names) + extras + draw(_specs) + draw(_markers)
    if kind == "option":
        return draw(_options)
    if kind == "url":
        return draw(_urls)
    if kind == "comment":
        return "# " + draw(st.text(max_size=30))
    if kind == "continued":
        return draw(_names) + " \\"
    if kind == "hashes":
        return draw(_names) + "==1.0 --hash=sha256:" + draw(st.text("0123456789abcdef", max_size=64))
    return draw(st.text(max_size=60).map(lambda t: t.replace("\r", "")))


@FUZZ
@given(
    lines=st.lists(requirement_lines(), max_size=12),
    other=st.lists(requirement_lines(), max_size=4),
    raw=st.none() | st.binary(max_size=200),
)
def test_requirements_parser_on_random_lines(sandbox, lines, other, raw):
    case = sandbox.case()
    (case / "other.txt").write_text("\n".join(other) + "\n", encoding="utf-8", errors="surrogatepass")
    (case / "local-1.0-py3-none-any.whl").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    req = case / "requirements.txt"
    if raw is not None:
        req.write_bytes(raw)
    else:
        req.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    sandbox.check(case, lambda: parse_requirements(req))


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
