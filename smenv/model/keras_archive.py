"""Read a `.keras` archive (a zip) without extracting it or deserialising anything.

Member names follow keras/src/saving/saving_lib.py: `metadata.json` ({"keras_version",
"date_saved": "%Y-%m-%d@%H:%M:%S"}), `config.json`, `model.weights.h5` (or `.npz`), `assets/`;
Keras 2.11's experimental format wrote `variables.h5` instead. Only the two JSON members are read,
through a bounded stream, so a zip bomb cannot inflate into memory.
"""

from __future__ import annotations

import json
import lzma
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from smenv.errors import InvalidModel, UnsafeModel, first_line

MAX_JSON_BYTES = 64 << 20  # a model config is kilobytes to a few megabytes
# An archive declaring more than this, at a compression ratio above MAX_RATIO, is a zip bomb:
# weights hardly compress, so real models stay near 1:1.
BOMB_BYTES = 1 << 30
MAX_RATIO = 100
WEIGHT_MEMBERS = ("model.weights.h5", "model.weights.npz", "variables.h5")


@dataclass(frozen=True)
class KerasArchive:
    keras_version: str | None
    saved_at: str | None
    config: dict | None
    weights_member: str | None
    members: tuple[str, ...]


def read_keras_archive(path: Path) -> KerasArchive:
    if not zipfile.is_zipfile(path):
        raise InvalidModel("not a .keras archive: the file is not a zip", path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            _check_members(path, infos)
            names = {i.filename for i in infos}
            metadata = _read_json(zf, "metadata.json", path) if "metadata.json" in names else {}
            if "config.json" not in names:
                raise InvalidModel("not a Keras model archive: config.json is missing", path)
            config = _read_json(zf, "config.json", path)
    # OSError: member offsets that point before the file (a truncated head still passes is_zipfile);
    # RuntimeError: an encrypted member; UnicodeDecodeError: a local header flagged UTF-8 whose name is not;
    # zlib.error, lzma.LZMAError: a corrupt deflate or LZMA stream (bzip2's is an OSError).
    # All found by tests/test_fuzz.py and tools/fuzz.py.
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, OSError, RuntimeError,
            UnicodeDecodeError, zlib.error, lzma.LZMAError) as exc:
        raise InvalidModel(f"damaged .keras archive ({first_line(exc)})", path) from None
    return KerasArchive(
        keras_version=metadata.get("keras_version") if isinstance(metadata.get("keras_version"), str) else None,
        saved_at=_iso_date(metadata.get("date_saved")),
        config=config,
        weights_member=next((m for m in WEIGHT_MEMBERS if m in names), None),
        members=tuple(sorted(names)),
    )


def _check_members(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    total = compressed = 0
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise UnsafeModel(f"archive member {name!r} points outside the archive (path traversal)", path)
        total += info.file_size
        compressed += info.compress_size
    if total > BOMB_BYTES and total > MAX_RATIO * max(compressed, 1):
        raise UnsafeModel(
            f"archive inflates to {total / (1 << 30):.1f} GiB from {compressed} compressed bytes (zip bomb)", path
        )


def _read_json(zf: zipfile.ZipFile, member: str, path: Path) -> dict:
    with zf.open(member) as stream:
        data = stream.read(MAX_JSON_BYTES + 1)  # bounded, whatever the header claims
    if len(data) > MAX_JSON_BYTES:
        raise UnsafeModel(f"{member} inflates beyond {MAX_JSON_BYTES >> 20} MiB", path)
    try:
        value = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidModel(f"{member} in the archive is not valid JSON", path) from None
    except RecursionError:  # nesting deeper than the parser's stack (tests/test_fuzz.py)
        raise InvalidModel(f"{member} in the archive is nested too deeply to be a model config", path) from None
    if not isinstance(value, dict):
        raise InvalidModel(f"{member} in the archive is not a JSON object", path)
    return value


def _iso_date(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d@%H:%M:%S").isoformat()
    except ValueError:
        return value
