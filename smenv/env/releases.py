"""The TensorFlow release table (smenv/data/tf_releases.json) and the version mappings built on it.

The table's columns and their sources are listed in the file itself; `tools/check_release_table.py`
checks it against what the index serves. An unknown version is an error with a message, never a
silent default.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from packaging.version import InvalidVersion, Version

from smenv.errors import UnknownRelease



@dataclass(frozen=True)
class Release:
    version: str
    release_date: str  # ISO date of the first upload
    python: tuple[str, ...]  # supported CPython minors, oldest first
    cuda: str | None
    cudnn: str | None
    keras: str  # the Keras requirement as the wheel states it
    keras_major: int
    cpu_wheel_python: tuple[str, ...]  # Pythons with a tensorflow-cpu Linux wheel
    gpu_route: str  # tensorflow-gpu | cuda-base-image | pip-cuda

    @property
    def minor(self) -> str:
        v = Version(self.version)
        return f"{v.major}.{v.minor}"

    @property
    def v(self) -> Version:
        return Version(self.version)


@dataclass(frozen=True)
class Mapped:
    release: Release
    note: str | None  # why this release, when it is not an exact match


@cache
def table() -> tuple[Release, ...]:
    data = json.loads(resources.files("smenv.data").joinpath("tf_releases.json").read_text(encoding="utf-8"))
    out = []
    for r in data["releases"]:
        cpu = r.get("cpu_wheel")
        if isinstance(cpu, dict):
            cpu_python = tuple(cpu.get("python", ())) if cpu.get("exists", True) else ()
        elif isinstance(cpu, list):
            cpu_python = tuple(cpu)
        else:
            cpu_python = tuple(r["python"]) if cpu else ()
        out.append(
            Release(
                version=r["version"],
                release_date=r["release_date"],
                python=tuple(r["python"]),
                cuda=r.get("cuda"),
                cudnn=r.get("cudnn"),
                keras=r.get("keras") or "",
                keras_major=int(r.get("keras_major") or 2),
                cpu_wheel_python=cpu_python,
                gpu_route=r.get("gpu_route") or "",
            )
        )
    return tuple(sorted(out, key=lambda rel: rel.v))


def get(version: str) -> Release | None:
    for r in table():
        if r.version == version:
            return r
    return None


def newest_patch(minor: str) -> Release | None:
    matches = [r for r in table() if r.minor == minor]
    return matches[-1] if matches else None


_PRODUCER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(.*)$")


def for_producer(producer: str) -> Mapped:
    """The release to run a model written by TensorFlow `producer` (as stored in the model)."""
    exact = get(producer)
    if exact is not None:
        return Mapped(exact, None)
    m = _PRODUCER.match(producer.strip())
    if not m:
        raise UnknownRelease(f"cannot read the producer TensorFlow version {producer!r}; pass --tf-version")
    base, rest = f"{m[1]}.{m[2]}.{m[3]}", m[4]
    kind = "a nightly build" if "dev" in rest else "a pre-release" if re.search(r"rc|a\d|b\d", rest) else "a local build" if rest else None
    if rest.endswith("-dirty"):
        kind = "a local build from a modified source tree (-dirty)"
    final = get(base)
    if final is not None:
        return Mapped(final, f"producer {producer} is {kind or 'not a published release'}; {final.version} is its final release")
    minor = f"{m[1]}.{m[2]}"
    patch = newest_patch(minor)
    if patch is not None:
        return Mapped(patch, f"producer {producer} is not on the index; {patch.version} is the newest {minor} release")
    oldest, newest = table()[0], table()[-1]
    v = Version(base)
    if v < oldest.v:
        last_1x = [r for r in table() if r.v.major == 1][-1] if v.major == 1 else oldest
        return Mapped(
            last_1x,
            f"producer {producer} is older than any installable release; {last_1x.version} is the last "
            f"{'1.x ' if v.major == 1 else ''}release and reads graphs written by earlier ones. It needs Python "
            f"{last_1x.python[-1]} or older; TensorFlow 2 also loads 1.x SavedModels",
        )
    if v > newest.v:
        raise UnknownRelease(
            f"the model was written by TensorFlow {producer}, newer than every release smenv knows "
            f"(newest {newest.version}); update smenv or pass --tf-version"
        )
    raise UnknownRelease(f"no TensorFlow release matches producer {producer}; pass --tf-version")


def for_keras(keras_version: str) -> Mapped:
    """The TensorFlow release whose Keras reads files written by `keras_version`.

    Rules from shared/reference/tensorflow-facts.md ("Keras files"): `2.2.4-tf`/`2.3.0-tf` are tf.keras
    of TF 1.15-2.2; `2.4.0` is TF 2.3-2.4; `2.5.0` TF 2.5; 2.6-2.15 ship with the TF of the same minor;
    Keras 3 runs on TF >= 2.16, which pins a minimum Keras; tf_keras 2.16+ goes with TF 2.16+.
    Standalone multi-backend Keras (2.0.x-2.3.x without `-tf`) predates tf.keras's own format; its HDF5
    files are read by tf.keras 2.x, so the newest Keras 2 runtime (TF 2.15) is used, with a note.
    """
    text = keras_version.strip()
    try:
        kv = Version(text.removesuffix("-tf"))
    except InvalidVersion:
        raise UnknownRelease(f"cannot read the Keras version {keras_version!r}; pass --tf-version") from None
    if kv.major >= 3:
        fitting = [r for r in table() if r.keras_major == 3 and _keras_min(r) is not None and _keras_min(r) <= kv]
        if not fitting:
            raise UnknownRelease(f"no TensorFlow release accepts Keras {keras_version}; pass --tf-version")
        best = fitting[-1]
        return Mapped(best, f"Keras {keras_version} (Keras 3) runs on TensorFlow >= 2.16; {best.version} is the newest whose Keras requirement ({best.keras}) admits it")
    minor = (kv.major, kv.minor)
    if text.endswith("-tf"):
        r = newest_patch("2.2")
        return Mapped(r, f"Keras {keras_version} is the tf.keras of TensorFlow 1.15-2.2; using {r.version}")
    if minor in ((2, 0), (2, 1), (2, 2), (2, 3)):
        r = newest_patch("2.15")
        return Mapped(
            r,
            f"Keras {keras_version} is standalone multi-backend Keras (TensorFlow 1.x era); its HDF5 files load in "
            f"tf.keras 2.x, so the newest Keras 2 runtime ({r.version}) is used; pass --tf-version to choose another",
        )
    if minor == (2, 4):
        r = newest_patch("2.4")
        return Mapped(r, f"Keras {keras_version} shipped with TensorFlow 2.3-2.4; using {r.version}")
    tf_minor = f"2.{kv.minor}"
    r = newest_patch(tf_minor)
    if r is None:
        raise UnknownRelease(f"no TensorFlow {tf_minor} release for Keras {keras_version}; pass --tf-version")
    return Mapped(r, f"Keras {keras_version} ships with TensorFlow {tf_minor}; using its newest patch, {r.version}")


def _keras_min(r: Release) -> Version | None:
    m = re.search(r">=\s*([0-9][0-9.]*)", r.keras)
    return Version(m.group(1)) if m else None
