"""Read a legacy Keras HDF5 file (`.h5`/`.hdf5`): attributes only, no dataset is ever read.

Root attributes per tf_keras/src/saving/legacy/hdf5_format.py: `keras_version`, `backend`,
`model_config` (JSON; absent from weights-only files), `training_config` (when compiled).
`save_weights` files carry `layer_names` instead. Keras 3's `.weights.h5` (H5IOStore in
keras/src/saving/saving_lib.py) has no attributes, only `layers/...` and `vars` groups.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from smenv.errors import InvalidModel, first_line

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAX_ATTR_BYTES = 64 << 20


@dataclass(frozen=True)
class H5Model:
    keras_version: str | None
    backend: str | None
    config: dict | None  # None for weights-only files
    compiled: bool
    weights_layout: str  # "full-model", "keras2-weights", "keras3-weights"


def read_h5(path: Path) -> H5Model:
    import h5py  # imported here: only needed for this format, and it is a large import

    try:
        with h5py.File(path, "r") as f:
            attrs = f.attrs
            keys = set(f.keys())
            version = _attr_text(attrs, "keras_version", path)
            backend = _attr_text(attrs, "backend", path)
            config_text = _attr_text(attrs, "model_config", path)
            compiled = "training_config" in attrs
            has_layer_names = "layer_names" in attrs
    # h5py raises RuntimeError (damaged B-tree, heap or attribute messages) and KeyError (unreadable
    # object header) on corrupt files, besides OSError (found by tests/test_fuzz.py).
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise InvalidModel(f"not a readable HDF5 file ({first_line(exc)})", path) from None
    if config_text is not None:
        try:
            config = json.loads(config_text)
        except json.JSONDecodeError:
            raise InvalidModel("the model_config attribute is not valid JSON", path) from None
        except RecursionError:
            raise InvalidModel("the model_config attribute is nested too deeply to be a model config", path) from None
        if not isinstance(config, dict):
            raise InvalidModel("the model_config attribute is not a JSON object", path)
        return H5Model(version, backend, config, compiled, "full-model")
    if has_layer_names or (version and "model_weights" not in keys):
        return H5Model(version, backend, None, False, "keras2-weights")
    if keys & {"layers", "vars", "_layer_checkpoint_dependencies"}:
        return H5Model(version, backend, None, False, "keras3-weights")
    raise InvalidModel(
        "HDF5 file has no Keras attributes (no model_config, keras_version or layer_names): not a Keras model", path
    )


def _attr_text(attrs, name: str, path: Path) -> str | None:
    if name not in attrs:
        return None
    value = attrs[name]
    if hasattr(value, "tobytes") and not isinstance(value, (bytes, str)):
        try:
            value = value.item() if value.size == 1 else value.tobytes()
        except Exception:
            return None
    if isinstance(value, bytes):
        if len(value) > MAX_ATTR_BYTES:
            raise InvalidModel(f"attribute {name} is larger than {MAX_ATTR_BYTES >> 20} MiB", path)
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None
