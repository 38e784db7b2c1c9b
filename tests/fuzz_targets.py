"""Fuzz targets: every path on which smenv reads user input, shared by tests/test_fuzz.py and tools/fuzz.py.

A target takes one input as bytes, writes it where the user's file would be (a model file, a set of
requirements files, a sample input) or hands it to the parsing function (an image's labels, its
smenv.json, what its verifier printed), and calls smenv's real entry point inside a `Sandbox`.
The property, for every input: success, or a `SmenvError` with a one-line message (the CLI turns it
into its documented exit code). Anything else is a crash: another exception (the CLI would call it
an internal error), a hang, a write outside the input's own directory, a temporary file left behind.

Each target has a hypothesis strategy that produces its bytes (CI runs it briefly, tests/test_fuzz.py;
`make fuzz` runs it for minutes) and seeds, real files from which the coverage-guided engine (atheris)
starts. Crashes `make fuzz` finds are saved under tests/fuzz_crashes/<target>/ and replayed by
tests/test_fuzz.py.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import shutil
import signal
import string
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import h5py
import numpy as np
from hypothesis import strategies as st

import fuzz_engine_answers as engine_answers
from smenv.errors import SmenvError
from smenv.model.hdf5_file import HDF5_MAGIC
from smenv.model.inspect import inspect_model
from smenv.model.keras_archive import read_keras_archive

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "tests" / "fixtures" / "models"
CRASHES = REPO / "tests" / "fuzz_crashes"  # inputs that once crashed a target, replayed by tests/test_fuzz.py
HANG_SECONDS = 20  # one input: a reader that takes this long on a small input is hung
# A name no reader may create: archive members and requirements lines point at it through ../ and absolute paths.
ESCAPE = f"smenv-fuzz-escape-{os.getpid()}"


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


class Sandbox:
    """`work` is the cwd and tempfile's directory (the caller sets both); every input gets its own case."""

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


def mutated(paths: list[Path]) -> st.SearchStrategy[bytes]:
    """One of these real files, damaged."""
    return st.sampled_from(paths).flatmap(lambda p: mutations(p.read_bytes()))


# .keras --------------------------------------------------------------------------------------------------

KERAS_FIXTURES = sorted(MODELS.glob("*.keras"))


@st.composite
def keras_with_replaced_json(draw) -> bytes:
    """Real archives (weights and all) whose config.json / metadata.json are replaced by anything."""
    which = draw(st.sampled_from(KERAS_FIXTURES))
    config, metadata = draw(json_member), draw(json_member | st.none())
    buf = io.BytesIO()
    with zipfile.ZipFile(which) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename == "config.json":
                dst.writestr("config.json", config)
            elif info.filename == "metadata.json":
                if metadata is not None:
                    dst.writestr("metadata.json", metadata)
            else:
                dst.writestr(info, src.read(info))
    size = draw(st.none() | st.integers(0, 2**32 - 1))
    return buf.getvalue() if size is None else _declare_sizes(buf.getvalue(), size, False)


# .h5 -----------------------------------------------------------------------------------------------------

H5_FIXTURES = sorted(MODELS.glob("*.h5"))

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


@st.composite
def h5_with_random_attributes(draw) -> bytes:
    """A well-formed HDF5 file (written in memory) whose attributes are anything h5py can store."""
    attrs = draw(st.dictionaries(_attr_names, attr_values(), max_size=6))
    groups = draw(st.lists(st.sampled_from(["model_weights", "layers", "vars", "_layer_checkpoint_dependencies", "x"]), max_size=3))
    on_group = draw(st.booleans())
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
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
    return buf.getvalue()


# SavedModel ----------------------------------------------------------------------------------------------

SAVED_MODEL_PBS = sorted(MODELS.glob("*/saved_model.pb")) + sorted((REPO / "examples").glob("*/*/saved_model.pb"))
KERAS_METADATA = sorted(MODELS.glob("*/keras_metadata.pb"))
PBTXT = sorted(MODELS.glob("*/saved_model.pbtxt"))


def _copy_model(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


# requirements files ----------------------------------------------------------------------------------

_names = st.sampled_from(["numpy", "tensorflow", "tensorflow-cpu", "Keras", "tf_keras", "zope.interface", "a", "x-y_z"])
_specs = st.sampled_from(["", "==1.2", ">=1,<2", "~=2.15.0", "===weird", "==2.*", "!=1", "== 1.0", "==", ">=", "<<1", "@"])
_markers = st.sampled_from(["", " ; python_version < '3.12'", "; sys_platform == 'linux'", " ; bogus marker", ";", "; extra == 'x'"])
_options = st.sampled_from([
    "-r other.txt", "-c other.txt", "-r missing.txt", "-r ../../" + ESCAPE, "-r /dev/null", "-r /", "-r .", "-c",
    "-r", "--index-url https://user:secret@example.invalid/simple", "-i http://127.0.0.1:1/simple",
    "--extra-index-url https://example.invalid/simple", "--find-links ./wheels", "-f https://x.invalid/",
    "--no-index", "--pre", "--trusted-host x", "-e .", "-e git+https://x.invalid/r.git#egg=r", "--hash=sha256:00",
    "--use-feature=x", "--frobnicate", "-Z", "--", "-", "--index-url", "--prefer-binary", "--only-binary :all:",
    # includes, constraints and links among the files of one input (see requirements_files), and strings the
    # os refuses: a NUL byte, ~nosuchuser, a name too long, an unclosed IPv6 bracket
    "-r sub/inc.txt", "-c c.txt", "-r ../other.txt", "-c ../c.txt", "-f wheels", "-f ../wheels", "-r ~/x.txt",
    "-r ~smenv-no-such-user/x.txt", "-f ~smenv-no-such-user", "-r \x00", "-f ./\x00", "-i http://x\x00/simple",
    "-r " + "a" * 300, "-f " + "b" * 5000, "-i http://[::1/simple", "--extra-index-url http://[x", "-r requirements.txt",
    "-c sub/inc.txt", "-r loop.txt",
])
_urls = st.sampled_from([
    "git+https://x.invalid/r.git#egg=r", "https://x.invalid/a-1.0-py3-none-any.whl", "./local-1.0-py3-none-any.whl",
    "file:///nonexistent/a-1.0-py3-none-any.whl", "./somedir", "a @ https://x.invalid/a.tar.gz", "a @ file:///etc",
    "hg+https://x.invalid/r#egg=r", "svn+https://x.invalid/r", "/", ".", "..", "a-1.0.tar.gz",
    "./wheels/w-2.0-py3-none-any.whl", "\x00/", "./\x00-1.0-py3-none-any.whl", "~smenv-no-such-user/a-1.0-py3-none-any.whl",
    "./" + "c" * 5000 + "-1.0-py3-none-any.whl", "file://" + str(REPO), "a @ file:///dev/null",
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


# Several files in one input: the main requirements.txt, then `\n--8<-- NAME\n` and each further file.
FILE_MARK = b"\n--8<-- "
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,60}(/[A-Za-z0-9_][A-Za-z0-9._-]{0,60}){0,2}")
MAX_FILES = 8


def encode_files(main: bytes, others: dict[str, bytes]) -> bytes:
    return main + b"".join(FILE_MARK + name.encode() + b"\n" + body for name, body in others.items())


def decode_files(data: bytes) -> dict[str, bytes]:
    """requirements.txt first, then the other files; names that could leave the case directory are dropped."""
    main, *rest = data.split(FILE_MARK)
    files = {"requirements.txt": main}
    for part in rest[:MAX_FILES]:
        name, _, body = part.partition(b"\n")
        text = name.decode("ascii", "replace")
        if _SAFE_NAME.fullmatch(text) and ".." not in text.split("/"):
            files.setdefault(text, body)
    return files


_lines = st.lists(requirement_lines(), max_size=12).map(lambda ls: ("\n".join(ls) + "\n").encode("utf-8", "surrogatepass"))


@st.composite
def requirements_files(draw) -> bytes:
    main = draw(_lines | st.binary(max_size=200))
    others = {}
    for name in draw(st.lists(st.sampled_from(["other.txt", "sub/inc.txt", "c.txt", "wheels/w-2.0-py3-none-any.whl",
                                               "local-1.0-py3-none-any.whl", "loop.txt"]), unique=True, max_size=4)):
        others[name] = b"PK\x05\x06" + b"\0" * 18 if name.endswith(".whl") else draw(_lines)
    return encode_files(main, others)


@cache
def _requirements_facts():
    return inspect_model(MODELS / "tf215-savedmodel")


# --sample-input ----------------------------------------------------------------------------------------

_dtypes = st.sampled_from(["f4", "f8", "i4", "i8", "u1", "?", "U5", "S3", "c8", "f2", "M8[s]", "V4"])
_shapes = st.sampled_from([(), (0,), (1,), (3,), (2, 3), (1, 1, 1, 1), (0, 5)])


def _npz(arrays: dict[str, np.ndarray], compressed: bool) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


@st.composite
def saved_npz(draw) -> bytes:
    names = st.sampled_from(["x", "input_1", "inputs", "serving_default_x", "a b", "é", "x.npy"]) | st.text(max_size=10)
    arrays = draw(st.dictionaries(names, st.tuples(_dtypes, _shapes), max_size=4))
    return _npz({n or "x": np.zeros(s, dtype=d) for n, (d, s) in arrays.items()}, draw(st.booleans()))


_npy_descr = st.sampled_from(["'<f4'", "'|O'", "'O'", "'<U5'", "[('a', '<i4')]", "'V10'", "'<M8[s]'", "'bogus'", "1",
                              "[('a', 'O')]", "{'names': ['a'], 'formats': ['<i4']}", "'S0'", "'<f4' + 1", "()"])
_npy_shape = st.sampled_from(["()", "(3,)", "(-1,)", "(2**70,)", "(1, 2, 3)", "[3]", "(3.5,)", "('a',)", "(" * 300,
                              "(4294967296, 4294967296)", "(0,)", "None"])


@st.composite
def npy_members(draw) -> bytes:
    """Zips of .npy members whose headers are anything numpy's header parser may see."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for _ in range(draw(st.integers(0, 3))):
            name = draw(st.sampled_from(["x.npy", "y.npy", "x", "dir/", "../x.npy", "x.npy.npy", ".npy", "a/b.npy"]))
            header = "{'descr': %s, 'fortran_order': %s, 'shape': %s, }" % (
                draw(_npy_descr), draw(st.sampled_from(["False", "True", "1", "'x'"])), draw(_npy_shape))
            if draw(st.booleans()):
                header = draw(st.text(max_size=80))
            version = draw(st.sampled_from([(1, 0), (2, 0), (3, 0), (9, 9)]))
            raw = header.encode("utf-8", "surrogatepass")
            length = struct.pack("<H" if version[0] == 1 else "<I", min(len(raw) + 1, 0xFFFF))
            body = b"\x93NUMPY" + bytes(version) + length + raw + b"\n" + draw(st.binary(max_size=64))
            with contextlib.suppress(ValueError):
                zf.writestr(name, body)
    return buf.getvalue()


def sample_inputs() -> st.SearchStrategy[bytes]:
    return st.one_of(saved_npz(), saved_npz().flatmap(mutations), npy_members(), st.binary(max_size=300))


# an image that claims to be an smenv image ----------------------------------------------------------------


def _plan_for(model: Path) -> dict:
    """The smenv.json `smenv generate` writes for a fixture model (with a lock, as a built image has)."""
    from smenv import pipeline
    from smenv.env.resolve import ResolveOptions

    plan = pipeline.generate(pipeline.ModelInput(model), None, ResolveOptions(), None, dry_run=True).plan_json
    env = plan["environment"]
    plan["lock"] = {"digest": "sha256:" + "0" * 64, "packages": {"numpy": "1.26.4", env["tensorflow_package"]: env["tensorflow_version"]}}
    plan["image"]["code"] = ["smenv_fixture_layers.py"]
    return json.loads(json.dumps(plan))


@cache
def real_plans() -> tuple[dict, ...]:
    return tuple(_plan_for(MODELS / m) for m in ("tf215-savedmodel", "tf215-custom-layer.keras", "tf212-keras2-savedmodel",
                                                   "tf218-keras3-lambda.keras"))


_PLAN_PATHS = [
    (), ("model",), ("environment",), ("image",), ("lock",), ("lock", "packages"), ("model", "custom_objects"),
    ("model", "tensorflow_version"), ("model", "keras_version"), ("model", "size_bytes"), ("environment", "tensorflow_version"),
    ("environment", "python"), ("environment", "keras_major"), ("environment", "legacy_keras"), ("environment", "loader"),
    ("image", "model_path"), ("image", "code"), ("image", "imports"), ("model", "custom_objects", 0),
    ("model", "custom_objects", 0, "class_name"), ("model", "custom_objects", 0, "module"), ("lock", "packages", "numpy"),
    ("model", "signatures"), ("smenv_version",),
]


@st.composite
def changed_json(draw, originals: list[dict], paths: list[tuple]) -> dict | list:
    """A real document with values replaced, added or removed at the paths the host reads."""
    doc = copy.deepcopy(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(0, 4))):
        path = draw(st.sampled_from(paths))
        value = draw(json_values | keras_like | st.sampled_from([None, "", "2.15.1", "3.11", 3, True, [], {}, "x" * 300]))
        if not path:
            doc = value
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key] if isinstance(parent, dict) and isinstance(key, str) and key in parent else (
                parent[key] if isinstance(parent, list) and isinstance(key, int) and key < len(parent) else None)
            if parent is None:
                break
        if isinstance(parent, dict) and isinstance(path[-1], str):
            if draw(st.booleans()) or path[-1] not in parent:
                parent[path[-1]] = value
            else:
                del parent[path[-1]]
        elif isinstance(parent, list) and isinstance(path[-1], int) and path[-1] < len(parent):
            parent[path[-1]] = value
    return doc


def image_plans() -> st.SearchStrategy[bytes]:
    as_json = st.builds(lambda: [dict(p) for p in real_plans()]).flatmap(
        lambda plans: changed_json(plans, _PLAN_PATHS)).map(lambda d: json.dumps(d).encode())
    return st.one_of(as_json, as_json.flatmap(mutations), deep_json(), json_member)


_label_keys = st.sampled_from(["org.smenv.version", "org.smenv.model.digest", "org.smenv.tensorflow.version",
                               "org.smenv.python.version", "org.opencontainers.image.title", "org.smenv.version "]) | st.text(max_size=20)


def encode_labels(labels: dict[str, str]) -> bytes:
    return "".join(f"{k}={v}\n" for k, v in labels.items()).encode("utf-8", "surrogatepass")


def decode_labels(data: bytes) -> dict[str, str]:
    """One `key=value` a line, as `docker inspect` would give them (strings, valid Unicode)."""
    labels = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        key, sep, value = line.partition("=")
        if sep:
            labels[key] = value
    return labels


def image_labels() -> st.SearchStrategy[bytes]:
    return st.dictionaries(_label_keys, st.text(max_size=40), max_size=6).map(encode_labels) | st.binary(max_size=100)


# What the verifier in the image printed: byte 0 says how the container ended, then stdout, then stderr.
STDERR_MARK = b"\n--8<-- stderr\n"
_EXIT_CODES = (0, 1, 2, 137, 139, 132, None, 124)


def encode_run(flags: int, stdout: bytes, stderr: bytes) -> bytes:
    return bytes([flags & 0xFF]) + stdout + STDERR_MARK + stderr


def decode_run(data: bytes):
    from smenv.docker.engine import SandboxRun

    flags = data[0] if data else 0
    stdout, _, stderr = data[1:].partition(STDERR_MARK)
    return SandboxRun(_EXIT_CODES[flags % 8], stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"),
                      bool(flags & 8), bool(flags & 16), 1.0)


_REAL_RESULTS = [
    {"ok": True, "stage": "done", "python": "3.11.2", "tensorflow": "2.15.1", "keras": "2.15.0", "numpy": "1.26.4",
     "timings": {"import_tensorflow_s": 2.1, "load_s": 0.4, "first_call_s": 0.05}, "gpus": [],
     "signatures": [{"name": "serving_default", "primary": True, "seconds": 0.05,
                     "inputs": [{"name": "x", "dtype": "float32", "shape": [1, 4], "synthetic": True}],
                     "outputs": [{"name": "y", "dtype": "float32", "shape": [1, 1]}]}]},
    {"ok": False, "stage": "load", "python": "3.11.2", "timings": {}, "signatures": [],
     "error": {"type": "ModuleNotFoundError", "module": "builtins", "message": "No module named 'tensorflow_text'",
               "traceback": "Traceback (most recent call last):\n  ...\nModuleNotFoundError: No module named 'tensorflow_text'"}},
    {"ok": False, "stage": "call", "signatures": [{"name": "serving_default", "primary": True,
                                                    "error": {"type": "InvalidArgumentError", "message": "bad shape"}}],
     "error": {"type": "RuntimeError", "message": "signature serving_default failed: bad shape"}},
]
_LOG_LINES = st.sampled_from([
    "smenv-verify: TensorFlow 2.15.1 imported in 2.0s", "Op type not registered 'SentencepieceOp' in binary running on x",
    "ModuleNotFoundError: No module named 'keras_nlp'", "numpy.core.multiarray failed to import",
    "A module that was compiled using NumPy 1.x cannot be run in NumPy 2.0.0",
    "ValueError: Unknown layer: 'ScaleShift'. Please ensure you are using a `keras.utils.custom_object_scope`",
    "TypeError: Error when deserializing class 'InputLayer' using config={'batch_shape': [None, 4]}",
    "ValueError: File format not supported: filepath=/opt/smenv/model", "The Lambda layer ... safe_mode=False",
    "compiled to use AVX instructions, but these aren't available", "tensorflow-probability requires tensorflow>=2.16",
    "Unknown object: 'Foo>Bar'", "weights only", "Illegal instruction",
])


@st.composite
def verifier_runs(draw) -> bytes:
    result = draw(changed_json(_REAL_RESULTS, [(), ("ok",), ("stage",), ("error",), ("error", "message"), ("error", "type"),
                                               ("signatures",), ("signatures", 0), ("signatures", 0, "name"),
                                               ("signatures", 0, "outputs"), ("signatures", 0, "error"), ("timings",),
                                               ("gpus",), ("python",)]))
    if isinstance(result, dict) and draw(st.booleans()):
        message = draw(_LOG_LINES | st.text(max_size=80))
        result.setdefault("error", {})
        if isinstance(result["error"], dict):
            result["error"]["message"] = message
    line = draw(st.sampled_from([b"SMENV_RESULT ", b"SMENV_RESULT", b""])) + json.dumps(result).encode()
    if draw(st.booleans()):
        line = draw(deep_json().map(lambda d: b"SMENV_RESULT " + d) | st.binary(max_size=100))
    stderr = "\n".join(draw(st.lists(_LOG_LINES | st.text(max_size=60), max_size=4))).encode("utf-8", "surrogatepass")
    return encode_run(draw(st.integers(0, 255)), draw(st.binary(max_size=40)) + b"\n" + line + b"\n", stderr)


# -- targets --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    what: str  # the user input, in the words of the summary
    run: Callable[[Sandbox, bytes], None]
    inputs: Callable[[], st.SearchStrategy[bytes]]  # hypothesis
    seeds: Callable[[], list[bytes]]  # real inputs the coverage-guided engine starts from
    # The engine `make fuzz` uses: atheris or hypothesis where one covered clearly more of smenv in equal
    # time, "both" (half the time each) where neither did. Measured with `tools/fuzz.py --compare 60`
    # (smenv's line-to-line branches after 60 s, hypothesis / atheris): keras 363/356, h5 336/330,
    # saved-model-pb 610/611, saved-model-pbtxt 408/415, keras-metadata 619/618, requirements 991/945,
    # sample-input 72/69, image-plan 1058/1056, image-labels 1943/1943, verifier-output 2319/2333.
    # The numbers tie but the bugs did not: atheris found the LZMA member, the empty zip member name and
    # the HDF5 hang, hypothesis the null custom object and numpy's TokenError.
    engine: str


def _read(paths) -> list[bytes]:
    return [p.read_bytes() for p in paths]


def run_keras(sandbox: Sandbox, data: bytes) -> None:
    path = sandbox.inspect_file("model.keras", data)
    sandbox.check(path.parent, lambda: read_keras_archive(path))


def run_h5(sandbox: Sandbox, data: bytes) -> None:
    sandbox.inspect_file("model.h5", data)


def _in_model_dir(src: str, member: str):
    def run(sandbox: Sandbox, data: bytes) -> None:
        case = sandbox.case()
        model = _copy_model(MODELS / src, case / "model")
        (model / member).write_bytes(data)
        sandbox.check(case, lambda: inspect_model(model))

    return run


def run_requirements(sandbox: Sandbox, data: bytes) -> None:
    """The requirements side of `smenv generate --dry-run`: parse (includes and all), then resolve."""
    from smenv.env.requirements import parse_requirements
    from smenv.env.resolve import ResolveOptions, resolve

    case = sandbox.case()
    for name, body in decode_files(data).items():
        with contextlib.suppress(OSError):  # a name that is already a directory, or under a file
            (case / name).parent.mkdir(parents=True, exist_ok=True)
            (case / name).write_bytes(body)
    facts = _requirements_facts()
    sandbox.check(case, lambda: resolve(facts, parse_requirements(case / "requirements.txt"), ResolveOptions()))


def run_sample_input(sandbox: Sandbox, data: bytes) -> None:
    from smenv.verify.sample import check_sample_input

    case = sandbox.case()
    path = case / "sample.npz"
    path.write_bytes(data)
    sandbox.check(case, lambda: check_sample_input(path))


# -- --model-builder: the spec, and the --code module whose source is searched for the function ---------

_BUILDER_FILES = sorted((REPO / "tests" / "fixtures" / "usercode").glob("*.py"))
BUILDER_SPECS = ["m:build", "m:tiny_functional", "smenv_fixture_builders:tiny_functional", "m.sub:build", "m:",
                 ":build", "m", "m:build:x", "m-x:build", "m:build()", "\x00:x", "m:\u00e9", "\u4e00:f", "..:f", "", "m." + "a" * 300 + ":f",
                 "m." + ".".join(["b"] * 3000) + ":f", "verify:build", "serve:build"]


def encode_builder(spec: str, source: bytes) -> bytes:
    return spec.encode("utf-8", "surrogatepass") + b"\n" + source


def run_model_builder(sandbox: Sandbox, data: bytes) -> None:
    """The spec (first line) parsed as the CLI does, then looked up in the module (the rest), written
    where --code would name it: a file m.py, or a package m/ with the source in m/__init__.py and m/sub.py."""
    from smenv.model.builder import check, parse

    spec_bytes, _, source = data.partition(b"\n")
    spec = spec_bytes.decode("utf-8", "replace")
    case = sandbox.case()
    if source[:1] == b"P":  # some inputs as a package, the rest as a single module file
        code = case / "m"
        code.mkdir()
        for name in ("__init__.py", "sub.py"):
            (code / name).write_bytes(source)
    else:
        code = case / "m.py"
        code.write_bytes(source)
    sandbox.check(case, lambda: check(parse(spec), (code,)))


_SOURCES = [
    b"def build():\n    return None\n", b"import tensorflow as tf\nbuild = tf.keras.Sequential\n", b"",
    b"\xef\xbb\xbfdef build(): pass\n", b"# -*- coding: latin-1 -*-\ndef build(): pass\n",
    b"# -*- coding: bogus -*-\ndef build(): pass\n", b"x = 1\x00\n", b"def build(:\n", b"\xff\xfe",
    b"(" * 300, b"-" * 200000 + b"1", b"a." * 200000 + b"b", b"not " * 100000 + b"x", b"if x:\n" + b"  pass\n",
    b"class build:\n    pass\n", b"from x import (a as build, b)\n", b"build: int\n", b"(build, other) = 1, 2\n",
]


@st.composite
def builder_inputs(draw) -> bytes:
    spec = draw(st.one_of(st.sampled_from(BUILDER_SPECS), st.text(max_size=40).filter(lambda t: "\n" not in t)))
    source = draw(st.one_of(st.sampled_from(_SOURCES), mutated(_BUILDER_FILES), st.binary(max_size=400),
                            st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))))
    return encode_builder(spec, source)


def _seed_builders() -> list[bytes]:
    real = (REPO / "tests" / "fixtures" / "usercode" / "smenv_fixture_builders.py").read_bytes()
    return [encode_builder("m:tiny_functional", real), encode_builder("m:build", _SOURCES[0]),
            encode_builder("m.sub:build", b"P = 1\ndef build(): pass\n"), encode_builder("m:too_wide", real)]


class _Image:
    """The two answers of the engine `smenv verify` reads before it starts a container."""

    def __init__(self, labels: dict[str, str], plan: bytes):
        self.labels, self.plan = labels, plan

    def image_info(self, ref: str):
        from smenv.docker.engine import ImageInfo

        return ImageInfo("sha256:" + "0" * 64, (ref,), 1, self.labels, "2024-01-01T00:00:00Z")

    def read_file(self, image: str, path: str) -> bytes:
        return self.plan


_CANNED_RUNS = (
    encode_run(1, b"SMENV_RESULT " + json.dumps(_REAL_RESULTS[1]).encode() + b"\n", b"ModuleNotFoundError: No module named 'x'"),
    encode_run(0, b"SMENV_RESULT " + json.dumps(_REAL_RESULTS[0]).encode() + b"\n", b""),
    encode_run(3, b"", b"killed"), encode_run(8, b"", b"smenv-verify: loading"), encode_run(16, b"", b""),
)


def _use_verdict(verdict) -> None:
    """What `smenv verify` does with a verdict: print it (both ways)."""
    from rich.console import Console

    from smenv import console

    json.dumps(verdict.to_json(), default=str)
    out, console.out = console.out, Console(file=io.StringIO(), width=120)
    try:
        console.show_verdict(verdict)
    finally:
        console.out = out


def run_image_plan(sandbox: Sandbox, data: bytes) -> None:
    """smenv.json read back from an image, then used: another model put in, and a failure diagnosed."""
    from smenv.verify.runner import _plan_for_model, _verdict, image_plan

    case = sandbox.case()

    def use():
        plan = image_plan(_Image({"org.smenv.version": "0.1.0"}, data), "img")
        _plan_for_model(plan, MODELS / "tf215-custom-layer.keras")
        for run in _CANNED_RUNS:
            _use_verdict(_verdict("img", plan, decode_run(run)))

    sandbox.check(case, use)


def run_image_labels(sandbox: Sandbox, data: bytes) -> None:
    from smenv.verify.runner import image_plan

    plan = json.dumps(real_plans()[0]).encode()
    sandbox.check(sandbox.case(), lambda: image_plan(_Image(decode_labels(data), plan), "img"))


def run_verifier_output(sandbox: Sandbox, data: bytes) -> None:
    from smenv.verify.runner import _verdict

    plans = real_plans()
    sandbox.check(sandbox.case(), lambda: [_use_verdict(_verdict("img", p, decode_run(data))) for p in plans[:2]])


# -- the served API's requests ------------------------------------------------------------------------

_SERVE_PATHS = (
    "/v1/models/hpt:predict", "/v1/models/hpt:classify", "/v1/models/hpt:regress", "/v1/models/hpt/metadata",
    "/v1/models/hpt", "/v1/models/hpt/versions/1:predict", "/v2/models/hpt/infer", "/v2/models/hpt",
    "/v2/models/hpt/ready", "/v2/health/ready", "/v2", "/metrics", "/openapi.json", "/v1/models/other:predict",
)
_SERVE_METHODS = ("POST", "POST", "POST", "GET", "HEAD", "PUT", "DELETE", "OPTIONS")


@cache
def _serve_app():
    """The server's WSGI application over the numpy stand-in model (smenv.runtime.serve.testing): the
    same routing, codecs and checks as in the image, without TensorFlow or a socket."""
    from smenv.runtime.serve.app import Application, Config, Service
    from smenv.runtime.serve.testing import FakeAdapter

    service = Service(Config(model_name="hpt", request_timeout=5.0, max_body=1 << 20))
    service.load(lambda: FakeAdapter())
    return Application(service)


class BadAnswer(Exception):
    """The served API broke its contract on an input: deliberately not a SmenvError."""


def run_serve_request(sandbox: Sandbox, data: bytes) -> None:
    """One HTTP request (path and method from the first byte, the rest the body) through the served API.
    The property: an answer below 500, JSON with a one-line "error" on every 4xx; the server is unharmed."""
    selector, body = (data[0], data[1:]) if data else (0, b"")
    environ = {
        "REQUEST_METHOD": _SERVE_METHODS[(selector >> 4) % len(_SERVE_METHODS)],
        "PATH_INFO": _SERVE_PATHS[(selector & 15) % len(_SERVE_PATHS)], "QUERY_STRING": "", "SERVER_NAME": "fuzz",
        "SERVER_PORT": "8501", "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    answer: dict = {}

    def start_response(status, headers):
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

    def call():
        out = b"".join(_serve_app()(environ, start_response))
        status = answer["status"]
        if status >= 500:
            raise BadAnswer(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}: {status} {out[:200]!r}")
        if status >= 400 and environ["REQUEST_METHOD"] != "HEAD":
            error = json.loads(out).get("error")
            if not isinstance(error, str) or not error or "\n" in error:
                raise BadAnswer(f"{environ['PATH_INFO']}: {status} without a one-line error: {out[:200]!r}")

    sandbox.check(sandbox.case(), call)


def serve_requests() -> st.SearchStrategy[bytes]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
    values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                          max_leaves=12)
    keys = st.sampled_from(["instances", "inputs", "signature_name", "examples", "context", "name", "shape",
                            "datatype", "data", "parameters", "outputs", "b64", "x", "x2"])
    bodies = st.one_of(
        st.binary(max_size=256),
        st.dictionaries(keys, values, max_size=4).map(lambda d: json.dumps(d).encode()),
        st.fixed_dictionaries({"inputs": st.lists(st.fixed_dictionaries({
            "name": st.sampled_from(["x", "y", ""]), "shape": st.lists(st.integers(-2, 4), max_size=3),
            "datatype": st.sampled_from(["FP32", "INT64", "BYTES", "BOOL", "FP16", "x"]),
            "data": values}), max_size=2)}).map(lambda d: json.dumps(d).encode()),
    )
    return st.tuples(st.integers(0, 255), bodies).map(lambda t: bytes([t[0]]) + t[1])


def _seed_serve_requests() -> list[bytes]:
    def at(path: str, method: str = "POST") -> int:
        return _SERVE_PATHS.index(path) + 16 * _SERVE_METHODS.index(method)

    return [
        bytes([at("/v1/models/hpt:predict")]) + b'{"instances": [1.0, 2.0, 5.0]}',
        bytes([at("/v1/models/hpt:predict")]) + b'{"signature_name": "", "inputs": {"x": [1.0]}}',
        bytes([at("/v1/models/hpt:classify")]) + b'{"examples": [{"x": 1.0}]}',
        bytes([at("/v2/models/hpt/infer")]) + b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}',
        bytes([at("/v1/models/hpt/metadata", "GET")]),
    ]


def _seed_npz() -> list[bytes]:
    return [
        _npz({"x": np.zeros((1, 4), "float32")}, False), _npz({"x": np.arange(6).reshape(2, 3), "s": np.array(["ab", "c"])}, True),
        _npz({"input_1": np.ones((2, 2, 3), "uint8"), "b": np.array([True])}, False), _npz({}, False),
    ]


def _seed_requirements() -> list[bytes]:
    example = (REPO / "examples" / "half_plus_two" / "requirements.txt").read_bytes()
    return [
        example,
        encode_files(b"numpy<2\n-r other.txt\n-c c.txt\n--find-links ./wheels\n./local-1.0-py3-none-any.whl\n",
                     {"other.txt": b"pandas==2.0.3\n-r sub/inc.txt\n", "sub/inc.txt": b"scipy>=1 ; python_version < '3.12'\n",
                      "c.txt": b"urllib3<2\n", "local-1.0-py3-none-any.whl": b"PK\x05\x06" + b"\0" * 18}),
        b"--index-url https://user:secret@example.invalid/simple\n--extra-index-url https://x.invalid/s\ntensorflow==2.15.0\n"
        b"requests[socks]>=2.31 --hash=sha256:aaaa\n",
    ]


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("keras", ".keras archives", run_keras,
           lambda: st.one_of(keras_zips(), mutated(KERAS_FIXTURES), keras_with_replaced_json()),
           lambda: _read(KERAS_FIXTURES), engine="both"),
    Target("h5", "legacy .h5 files", run_h5,
           lambda: st.one_of(st.binary(max_size=4096).map(lambda t: HDF5_MAGIC + t), mutated(H5_FIXTURES), h5_with_random_attributes()),
           lambda: _read(H5_FIXTURES), engine="both"),
    Target("saved-model-pb", "saved_model.pb", _in_model_dir("tf212-keras2-savedmodel", "saved_model.pb"),
           lambda: st.one_of(mutated(SAVED_MODEL_PBS), st.binary(max_size=2048)),
           lambda: _read(SAVED_MODEL_PBS), engine="both"),
    Target("saved-model-pbtxt", "saved_model.pbtxt", _in_model_dir("tf215-savedmodel-pbtxt", "saved_model.pbtxt"),
           lambda: st.one_of(mutated(PBTXT), st.binary(max_size=2048)),
           lambda: _read(PBTXT), engine="both"),
    Target("keras-metadata", "keras_metadata.pb", _in_model_dir("tf212-keras2-savedmodel", "keras_metadata.pb"),
           lambda: mutated(KERAS_METADATA), lambda: _read(KERAS_METADATA), engine="both"),
    Target("requirements", "requirements files (includes, constraints, links, index options)", run_requirements,
           requirements_files, _seed_requirements, engine="hypothesis"),
    Target("sample-input", "--sample-input .npz files", run_sample_input, sample_inputs, _seed_npz, engine="both"),
    Target("model-builder", "--model-builder and the --code module it names", run_model_builder, builder_inputs,
           _seed_builders, engine="both"),
    Target("image-plan", "smenv.json read back from an image", run_image_plan, image_plans,
           lambda: [json.dumps(p).encode() for p in real_plans()], engine="both"),
    Target("image-labels", "the labels of an image given to verify", run_image_labels, image_labels,
           lambda: [encode_labels({"org.smenv.version": "0.1.0", "org.smenv.tensorflow.version": "2.15.1"})],
           engine="both"),
    Target("verifier-output", "what the verifier in an image prints", run_verifier_output, verifier_runs,
           lambda: list(_CANNED_RUNS), engine="both"),
    Target("serve-request", "requests to the served API (TF Serving REST, Open Inference Protocol)",
           run_serve_request, serve_requests, _seed_serve_requests, engine="both"),
    # Scenarios are JSON documents: byte-level mutation mostly breaks the JSON, so hypothesis drives these.
    Target("base-image-metadata", "the metadata of a pulled base image (its config, labels, what python3 says)",
           lambda sandbox, data: sandbox.check(sandbox.case(), lambda: engine_answers.pull_a_base(data)),
           engine_answers.base_scenarios, engine_answers.seed_base_scenarios, engine="hypothesis"),
    Target("registry-answers", "registry answers relayed by the engine (pull, push, manifest, cache registry)",
           lambda sandbox, data: sandbox.check(sandbox.case(), lambda: engine_answers.registry_answers(data)),
           engine_answers.registry_scenarios, engine_answers.seed_registry_scenarios, engine="hypothesis"),
]}
