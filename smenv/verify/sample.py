"""`--sample-input FILE.npz`, checked on the host before a container starts.

The verifier loads the file inside the sandbox with `numpy.load` (pickles refused) and feeds the
arrays named after the model's inputs. Here only the zip directory and each array's header are read,
through a bounded stream: never the data, never a pickle, so a hostile file costs nothing on the host
and a wrong one is a one-line error (exit 2) instead of a failed verification.
"""

from __future__ import annotations

import io
import lzma
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from smenv.errors import SampleInputError, first_line

HEADER_BYTES = 1 << 16  # magic, version, length and header: numpy writes under a few hundred bytes
WHAT = "an .npz file (numpy.savez: a zip of .npy arrays named after the model's inputs)"


@dataclass(frozen=True)
class SampleArray:
    name: str
    dtype: str
    shape: tuple[int, ...]


def check_sample_input(path: Path) -> tuple[SampleArray, ...]:
    """The arrays a sample input holds, from their headers; SampleInputError when it cannot be used."""
    try:
        if not path.is_file():
            raise SampleInputError("sample input not found (or not a file)", path)
        if not zipfile.is_zipfile(path):
            raise SampleInputError(f"the sample input is not {WHAT}", path)
        with zipfile.ZipFile(path) as zf:
            arrays = tuple(_array(zf, info, path) for info in zf.infolist())
    # Damaged zips, as in smenv/model/keras_archive.py: offsets before the file (OSError), an encrypted
    # member (RuntimeError), a name flagged UTF-8 that is not, an unsupported or corrupt compression.
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, OSError, RuntimeError,
            UnicodeDecodeError, zlib.error, lzma.LZMAError) as exc:
        raise SampleInputError(f"damaged sample input ({first_line(exc)})", path) from None
    if not arrays:
        raise SampleInputError(f"the sample input holds no arrays: expected {WHAT}", path)
    return arrays


def _array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> SampleArray:
    import numpy as np
    from numpy.lib import format as npy

    name = info.filename
    if not name.endswith(".npy"):  # also a directory, or an empty name (ZipInfo.is_dir() fails on that one)
        raise SampleInputError(f"member {name!r} of the sample input is not an .npy array: expected {WHAT}", path)
    with zf.open(info) as stream:
        head = stream.read(HEADER_BYTES)  # bounded, whatever the zip claims
    fp = io.BytesIO(head)
    try:
        version = npy.read_magic(fp)
        # Version 3.0 differs from 2.0 only in the header's encoding (UTF-8 instead of latin-1).
        read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _fortran, dtype = read(fp)
    # numpy parses the header with ast and, when that fails, tokenize; a bad magic, version, header or dtype
    # description comes out as ValueError, TypeError, KeyError, SyntaxError, tokenize.TokenError, RecursionError...
    # (found by tests/test_fuzz.py): whatever numpy raises on these few bytes means "not an array header".
    except Exception as exc:
        raise SampleInputError(f"array {name!r} of the sample input has no valid .npy header ({first_line(exc)})", path) from None
    if not isinstance(dtype, np.dtype) or not isinstance(shape, tuple) or any(d < 0 for d in shape):
        raise SampleInputError(f"array {name!r} of the sample input has no valid .npy header", path)
    if dtype.hasobject:
        raise SampleInputError(
            f"array {name!r} of the sample input holds Python objects (dtype {dtype}), which the verifier "
            "does not load (no pickles): save numbers or strings", path
        )
    needed = fp.tell() + math.prod(shape) * dtype.itemsize
    if info.file_size < needed:
        raise SampleInputError(
            f"array {name!r} of the sample input is cut short ({info.file_size} bytes, its header needs {needed})", path
        )
    return SampleArray(name.removesuffix(".npy"), str(dtype), tuple(shape))
