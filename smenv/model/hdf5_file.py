"""Read a legacy Keras HDF5 file (`.h5`/`.hdf5`): attributes only, no dataset is ever read.

Root attributes per tf_keras/src/saving/legacy/hdf5_format.py: `keras_version`, `backend`,
`model_config` (JSON; absent from weights-only files), `training_config` (when compiled).
`save_weights` files carry `layer_names` instead. Keras 3's `.weights.h5` (H5IOStore in
keras/src/saving/saving_lib.py) has no attributes, only `layers/...` and `vars` groups.

The HDF5 library reads a damaged file in C, where Python cannot stop it: a 17 KB file can make it
loop forever, or allocate gigabytes for one attribute (both found by tools/fuzz.py). So the attributes
are read in a forked child with a time and a memory limit (where the platform can fork); a child that
runs out of either is an invalid model like any other damaged file.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from smenv.errors import InvalidModel, first_line

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAX_ATTR_BYTES = 64 << 20
READ_SECONDS = 15  # reading a few attributes takes milliseconds, even a 64 MiB model_config
READ_BYTES = 1 << 30  # address space the reading child may add to what it inherits


@dataclass(frozen=True)
class H5Model:
    keras_version: str | None
    backend: str | None
    config: dict | None  # None for weights-only files
    compiled: bool
    weights_layout: str  # "full-model", "keras2-weights", "keras3-weights"


def read_h5(path: Path) -> H5Model:
    import h5py  # noqa: F401 - imported here, before the fork: only needed for this format, and a large import

    version, backend, config_text, compiled, has_layer_names, keys = _isolated(_read_attributes, path)
    keys = set(keys)
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


def _read_attributes(path: Path) -> tuple:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = f.attrs
            # h5py gives a link name that is not UTF-8 as bytes (found by tests/test_fuzz.py); such a
            # name is none of the Keras group names, so it only needs to sort beside the others
            keys = sorted(k if isinstance(k, str) else k.decode("utf-8", "replace") for k in f.keys())
            version = _attr_text(attrs, "keras_version", path)
            backend = _attr_text(attrs, "backend", path)
            config_text = _attr_text(attrs, "model_config", path)
            compiled = "training_config" in attrs
            has_layer_names = "layer_names" in attrs
    # h5py raises RuntimeError (damaged B-tree, heap or attribute messages) and KeyError (unreadable
    # object header) on corrupt files, besides OSError (found by tests/test_fuzz.py).
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise InvalidModel(f"not a readable HDF5 file ({first_line(exc)})", path) from None
    except MemoryError:
        raise InvalidModel(f"not a readable HDF5 file (reading its attributes needs more than {READ_BYTES >> 30} GiB)", path) from None
    return version, backend, config_text, compiled, has_layer_names, keys


def _isolated(read, path: Path) -> tuple:
    """`read(path)` in a forked child, bounded in time and memory; its result or its InvalidModel."""
    if not hasattr(os, "fork"):
        return read(path)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, never return into the caller's stack
        try:
            os.close(r)
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it; the parent cleans up
            signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the time limit kills, even inside C code
            signal.alarm(READ_SECONDS)
            _limit_memory(READ_BYTES)
            try:
                answer = {"ok": read(path)}
            except InvalidModel as exc:
                answer = {"invalid": exc.message}
            except BaseException as exc:  # a bug: the parent raises it as one (the CLI: an internal error)
                answer = {"bug": f"{type(exc).__name__}: {exc}"}
            with os.fdopen(w, "w", encoding="utf-8") as out:
                json.dump(answer, out)
        finally:
            os._exit(0)
    os.close(w)
    try:
        with os.fdopen(r, "r", encoding="utf-8") as pipe:
            text = pipe.read()
        _, status = os.waitpid(pid, 0)
    except BaseException:  # Ctrl-C or the caller's own alarm: leave no child behind
        _kill(pid)
        raise
    if not text:
        how = (f"it did not finish in {READ_SECONDS} s" if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM
               else f"reading it stopped the HDF5 library ({_status_text(status)})")
        raise InvalidModel(f"not a readable HDF5 file ({how}): the file is damaged", path)
    answer = json.loads(text)
    if "invalid" in answer:
        raise InvalidModel(answer["invalid"], path)
    if "bug" in answer:
        raise RuntimeError(f"{answer['bug']} (reading {path} in a child process)")
    return tuple(answer["ok"])


def _limit_memory(extra: int) -> None:
    try:
        import resource

        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (size + extra, resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (ImportError, OSError, ValueError):
        pass  # not Linux: the time limit still holds


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass


def _status_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        try:
            return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
        except ValueError:
            return f"signal {os.WTERMSIG(status)}"
    return f"exit {os.WEXITSTATUS(status)}"


def _attr_text(attrs, name: str, path: Path) -> str | None:
    if name not in attrs:
        return None
    try:
        value = attrs[name]
    except TypeError as exc:  # a datatype h5py has no reading for: "Unknown string encoding" (make fuzz, h5)
        raise InvalidModel(f"attribute {name} has a type that cannot be read ({first_line(exc)}): the file is damaged", path) from None
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
