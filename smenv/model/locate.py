"""Decide what a user-given path is: which format, and which directory or file to read.

TF Serving lays models out as BASE/<version>/saved_model.pb with numeric version directories
(tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc serves the highest).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from smenv.errors import ModelNotFound
from smenv.model.facts import H5, KERAS, SAVEDMODEL
from smenv.model.hdf5_file import HDF5_MAGIC
from smenv.model.savedmodel import savedmodel_file

ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class Located:
    kind: str  # SAVEDMODEL for any SavedModel directory (Keras or not), KERAS, H5
    root: Path  # the SavedModel directory or the model file
    note: str | None = None


def locate(path: Path, version: int | None = None) -> Located:
    if not path.exists():
        raise ModelNotFound("no such file or directory", path)
    if path.is_file():
        return _locate_file(path)
    if not path.is_dir():
        raise ModelNotFound("not a regular file or directory", path)
    if savedmodel_file(path) is not None:
        if version is not None:
            raise ModelNotFound(f"--model-version {version} given, but this is a SavedModel, not a base directory", path)
        return Located(SAVEDMODEL, path)
    versions = sorted(
        (int(p.name), p) for p in path.iterdir() if p.is_dir() and p.name.isdigit() and savedmodel_file(p) is not None
    )
    if versions:
        available = ", ".join(p.name for _, p in versions)
        if version is None:
            number, chosen = versions[-1]
            note = None
            if len(versions) > 1:
                note = f"base directory with versions {available}: using the highest, {chosen.name} (choose with --model-version)"
            else:
                note = f"base directory: using version {chosen.name}"
            return Located(SAVEDMODEL, chosen, note)
        for number, p in versions:
            if number == version:
                return Located(SAVEDMODEL, p, f"base directory: using version {p.name}, as asked")
        raise ModelNotFound(f"no version {version} here (versions: {available})", path)
    if not any(path.iterdir()):
        raise ModelNotFound("directory is empty: expected a SavedModel (saved_model.pb)", path)
    raise ModelNotFound(
        "no model here: expected saved_model.pb or saved_model.pbtxt, or numeric version sub-directories", path
    )


def _locate_file(path: Path) -> Located:
    if path.name in ("saved_model.pb", "saved_model.pbtxt"):
        return Located(SAVEDMODEL, path.parent, f"reading the SavedModel directory {path.parent}")
    with open(path, "rb") as f:
        head = f.read(8)
    suffix = path.suffix.lower()
    if suffix == ".keras" or head.startswith(ZIP_MAGIC):
        return Located(KERAS, path)
    if suffix in (".h5", ".hdf5") or head == HDF5_MAGIC:
        return Located(H5, path)
    raise ModelNotFound(
        "not a model file: expected a .keras archive, an .h5/.hdf5 file, or a SavedModel directory", path
    )
