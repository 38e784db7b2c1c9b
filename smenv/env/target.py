"""The platform an image runs on, as wheel tags: one definition for locking, downloading and dating."""

from __future__ import annotations

from functools import cache

from packaging.tags import Tag, compatible_tags, cpython_tags

# uv's name for the platform it resolves for. glibc of the Debian releases smenv's base images use is
# 2.31 (bullseye) or newer; manylinux_2_28 wheels run on all of them, and TensorFlow's own wheels are
# manylinux_2_17 / 2_27.
UV_PLATFORM = "x86_64-manylinux_2_28"
# pip's --platform takes exact tags: every manylinux level that platform accepts.
PIP_PLATFORMS = (
    "manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64",
)


@cache
def wheel_tags(python: str) -> frozenset[Tag]:
    """Every wheel tag an x86_64 Linux CPython `python` (e.g. "3.11") installs."""
    version = tuple(int(x) for x in python.split("."))
    return frozenset(cpython_tags(version, platforms=PIP_PLATFORMS)) | frozenset(compatible_tags(version, platforms=PIP_PLATFORMS))
