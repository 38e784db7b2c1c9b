"""The base image a build starts FROM: obtained, not demanded.

In order: the engine has it; pull it (from the base registry first, when one is configured, then under
its own name, i.e. Docker Hub for the official images); build it from Debian with debootstrap (for the
Pythons Debian ships, where root and debootstrap are available); else one error saying what was tried
and what to do. A pulled image is used only once its Python is the one the lock was made for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from smenv.env.bases import debian_suites, mirrored, official_image
from smenv.errors import BaseImageError, DockerUnavailable, RegistryError

if TYPE_CHECKING:
    from smenv.docker.engine import ImageInfo
    from smenv.docker.interface import ContainerEngine

Progress = Callable[[str], None]
# (python X.Y, tag, progress) -> the image made; raises BaseImageError (debootstrap missing, not root, ...).
DebianBuilder = Callable[[str, str, Progress], "ImageInfo"]

# A python slim image is about 45 MiB compressed: minutes on a slow link, never a quarter of an hour.
DEFAULT_PULL_TIMEOUT_S = 900.0


def pull_timeout_default() -> float:
    """SMENV_PULL_TIMEOUT seconds when it is a positive number, else the default (a typo must not crash a build)."""
    try:
        value = float(os.environ.get("SMENV_PULL_TIMEOUT", ""))
    except ValueError:
        return DEFAULT_PULL_TIMEOUT_S
    return value if value > 0 else DEFAULT_PULL_TIMEOUT_S

PYTHON_CHECK = ["python3", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"]


@dataclass(frozen=True)
class ObtainedBase:
    info: ImageInfo
    how: str  # "on the engine", "pulled from REF", "built from Debian SUITE"


def obtain_base_image(
    engine: ContainerEngine,
    image: str,
    python: str | None,
    *,
    registry: str | None = None,
    build_from_debian: DebianBuilder | None = None,
    progress: Progress = lambda message: None,
    pull_timeout: float | None = None,
) -> ObtainedBase:
    """`image` on `engine`, obtained as the module docstring says. `python` (X.Y) is checked in a pulled
    image; None skips the check (CUDA runtime images have no Python: the Dockerfile installs one)."""
    info = engine.image_info(image)
    if info is not None:
        return ObtainedBase(info, "on the engine")
    tried: list[str] = []
    for ref in pull_candidates(image, registry):
        progress(f"base image: pulling {ref}")
        try:
            found = engine.pull(ref, progress, timeout=pull_timeout or pull_timeout_default())
        except DockerUnavailable:
            raise
        except RegistryError as exc:
            tried.append(f"pulling {ref} failed ({_short(exc.message)})")
            continue
        if not found:
            tried.append(f"{ref} is not in its registry")
            continue
        pulled = engine.image_info(ref)
        problem = python_mismatch(engine, ref, pulled, python) if pulled is not None else "the engine does not list it"
        if problem:
            tried.append(f"pulled {ref}, but {problem}: not used")
            _untag(engine, ref)
            continue
        if ref != image:  # under the name the plan and the Dockerfile use, so the next build finds it
            engine.tag_image(ref, image)
        return ObtainedBase(engine.image_info(image) or pulled, f"pulled {ref}")
    if python is not None and image == official_image(python) and python in debian_suites():
        if build_from_debian is None:
            tried.append("building it from Debian is not possible with this engine")
        else:
            try:
                made = build_from_debian(python, image, progress)
                return ObtainedBase(made, f"built from Debian {debian_suites()[python]}'s python3")
            except BaseImageError as exc:
                tried.append(f"building it from Debian failed ({_short(exc.message)})")
    elif python is not None and image == official_image(python):
        tried.append(f"no Debian release ships Python {python}, so it cannot be built from Debian")
    raise BaseImageError(f"base image {image} cannot be obtained: {'; '.join(tried)}. {_advice(image, python)}")


def pull_candidates(image: str, registry: str | None) -> list[str]:
    """What to pull, in order: the base registry's copy (for Docker Hub names), then the name itself."""
    refs = []
    if registry and not _names_a_registry(image):
        refs.append(mirrored(registry, image))
    refs.append(image)
    return refs


def python_mismatch(engine: ContainerEngine, ref: str, info: ImageInfo, python: str | None) -> str | None:
    """Why the image is not Python `python`, or None when it is. The official images say it in
    PYTHON_VERSION and smenv's own in a label; others are asked by running python3 in the sandbox."""
    if python is None:
        return None
    stated = info.labels.get("org.smenv.base.python") or next(
        (e.split("=", 1)[1] for e in info.env if e.startswith("PYTHON_VERSION=")), None
    )
    if stated is None:
        from smenv.docker.engine import Sandbox

        run = engine.run_sandboxed(ref, PYTHON_CHECK, Sandbox(memory="256m", timeout_s=60, pids=64))
        if run.exit_code != 0:
            return f"python3 does not run in it (exit {run.exit_code}: {_short(run.stderr or run.stdout)})"
        stated = run.stdout.strip()
    m = re.match(r"(\d+)\.(\d+)", stated)
    if not m or f"{m.group(1)}.{m.group(2)}" != python:
        return f"it holds Python {_short(stated, 60)}, not {python}"  # a label's value: any text, newlines too
    return None


def debian_builder(engine: object) -> DebianBuilder | None:
    """`build_base_image` (debootstrap) on a real engine; None for others (it needs docker import)."""
    from smenv.docker.engine import Engine

    if not isinstance(engine, Engine):
        return None

    def build(python: str, tag: str, progress: Progress) -> ImageInfo:
        from smenv.docker.base_image import build_base_image

        progress(f"base image: building {tag} from Debian packages (debootstrap, about a minute)")
        made = build_base_image(engine, python, tag=tag, progress=progress)
        info = engine.image_info(made.image_id)
        if info is None:
            raise BaseImageError(f"{tag} was built but the engine does not list it")
        return info

    return build


def _advice(image: str, python: str | None) -> str:
    if python is not None and image == official_image(python) and python in debian_suites():
        return (f"Run `smenv base --python {python}` as root (it needs debootstrap), pass --base-registry with a "
                "registry that serves the official python images, or `docker load` the image")
    return ("Pass --base-registry with a registry that serves it, `docker load` it, or pass --base-image with an "
            "image the engine has")


def _names_a_registry(image: str) -> bool:
    """True when `image` starts with a registry host (registry.example/x, 127.0.0.1:5000/x, localhost/x)."""
    first, _, rest = image.partition("/")
    return bool(rest) and ("." in first or ":" in first or first == "localhost")


def _untag(engine: ContainerEngine, ref: str) -> None:
    remove = getattr(engine, "remove_image", None)  # the real engine's; fakes need not have it
    if remove is not None:
        try:
            remove(ref, force=True)
        except Exception:  # noqa: BLE001 - a leftover tag is not worth failing over; the error says what happened
            pass


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
