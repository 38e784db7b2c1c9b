"""Which Pythons' base images this host can obtain, and how: a fact handed to resolution, not found by it.

Resolution stays engine-free (`generate` needs no engine): the caller says what it knows, i.e. the
base registry configured (--base-registry / SMENV_BASE_REGISTRY) and, for `build`, the Pythons whose
base image the engine already holds. Debian's own python3 releases are always obtainable: `smenv base`
(and `smenv build`, as a last resort) builds them with debootstrap. The names and suites are data:
smenv/data/python_base_images.json.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources


@cache
def _data() -> dict:
    return json.loads(resources.files("smenv.data").joinpath("python_base_images.json").read_text(encoding="utf-8"))


def debian_suites() -> dict[str, str]:
    """{Python X.Y: the Debian suite whose python3 it is} (bullseye 3.9, bookworm 3.11, trixie 3.13)."""
    return dict(_data()["debian_python3"])


def known_pythons() -> tuple[str, ...]:
    """The Pythons whose official image smenv knows the name of."""
    return tuple(_data()["official_suite"])


def official_image(python: str) -> str:
    """The official image smenv names for `python` (X.Y): python:X.Y-slim-SUITE."""
    suite = _data()["debian_python3"].get(python) or _data()["official_suite"].get(python, "bookworm")
    return f"python:{python}-slim-{suite}"


def mirrored(registry: str, image: str) -> str:
    """`image` (a Docker Hub name) as the base registry serves it: HOST[:PORT][/PATH]/NAME:TAG.

    A registry given without a path is taken for a mirror of Docker Hub, which keeps official images
    under library/ (127.0.0.1:5000 -> 127.0.0.1:5000/library/python:3.11-slim-bookworm).
    """
    registry = registry.strip().rstrip("/")
    if "/" not in registry and "/" not in image.split(":", 1)[0]:
        return f"{registry}/library/{image}"
    return f"{registry}/{image}"


def registry_option(text: str | None) -> str | None:
    """--base-registry / SMENV_BASE_REGISTRY checked: HOST[:PORT][/PATH], no scheme, no tag."""
    from smenv.errors import UsageError

    if text is None or not text.strip():
        return None
    value = text.strip().rstrip("/")
    if not re.fullmatch(r"[A-Za-z0-9.-]+(:\d+)?(/[a-z0-9._/-]+)?", value):
        raise UsageError(
            f"--base-registry {text!r} is not HOST[:PORT][/PATH] (for example 127.0.0.1:5000 or mirror.example/dockerhub)"
        )
    return value


@dataclass(frozen=True)
class BaseAvailability:
    registry: str | None = None  # a registry (or mirror) that serves the official python images
    on_engine: tuple[str, ...] = ()  # Pythons whose official_image() the engine already holds

    def how(self, python: str) -> str | None:
        """How this host gets `python`'s base image, in words; None when it cannot."""
        if python in self.on_engine:
            return f"the Docker engine has {official_image(python)}"
        if self.registry:
            return f"pulled from the base registry {self.registry}"
        suite = debian_suites().get(python)
        if suite:
            return f"built from Debian {suite}'s python3 where no registry serves it"
        return None

    def why_not(self, python: str) -> str:
        return (
            f"no Debian release ships Python {python}, the engine has no {official_image(python)} "
            "and no base registry is configured (--base-registry or SMENV_BASE_REGISTRY)"
        )
