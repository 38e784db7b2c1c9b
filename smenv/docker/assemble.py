"""Put an image together from layers and a config, and hand it to the engine with one `docker load`.

The engine's image load registers only the layers it lacks (for each diff ID it looks up the layer
chain first and reads the layer file only when that is missing: moby image/tarexport/load.go), so an
image on top of layers the engine has costs only its new layers, and no step is committed. The image
ID is the sha256 of the config: the same layers and config give the same ID on any engine
(../shared/reference/image-assembly.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from smenv.docker.layers import TAR_END, file_chunks, tar_member, tar_padding


@dataclass(frozen=True)
class ImageSpec:
    """What the image runs as: the same settings the generated Dockerfile's ENV, USER, WORKDIR, CMD and
    LABEL lines give."""

    env: tuple[tuple[str, str], ...]  # set over the base image's environment, in this order
    user: str
    workdir: str
    cmd: tuple[str, ...]
    labels: Mapping[str, str]
    created: str  # ISO 8601 UTC, fixed by the inputs (never the time of the build)
    healthcheck: Mapping | None = None
    exposed_ports: tuple[str, ...] = ()  # "8501/tcp", as EXPOSE 8501 records it


@dataclass(frozen=True)
class ImageConfig:
    data: bytes  # the config JSON, exactly as its digest is taken
    diff_ids: tuple[str, ...]

    @property
    def image_id(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ImageToLoad:
    config: ImageConfig
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Archive:
    images: tuple[ImageToLoad, ...]
    layers: Mapping[str, Path] = field(default_factory=dict)  # diff ID -> layer tar, for the layers sent


def image_config(base_config: Mapping, base_diff_ids: Sequence[str], new_layers: Sequence[tuple[str, str]],
                 spec: ImageSpec, architecture: str, os_name: str) -> ImageConfig:
    """The OCI/Docker image config: the base's settings, `spec` over them, the base's layers then ours.

    `new_layers` is (diff ID, what made it) for each layer added, in order; the history says so.
    """
    env = _merge_env(base_config.get("Env") or [], spec.env)
    config = {
        "Env": env,
        "User": spec.user,
        "WorkingDir": spec.workdir,
        "Cmd": list(spec.cmd),
        # The base's labels, then ours over them, as a Dockerfile's LABEL lines inherit them (the base
        # image's org.smenv.base.* were missing from assembled images, found by comparing configs).
        "Labels": dict(sorted({**(base_config.get("Labels") or {}), **spec.labels}.items())),
    }
    if spec.healthcheck:
        config["Healthcheck"] = dict(spec.healthcheck)
    ports = dict(base_config.get("ExposedPorts") or {})
    ports.update({port: {} for port in spec.exposed_ports})
    if ports:
        config["ExposedPorts"] = dict(sorted(ports.items()))
    diff_ids = tuple(base_diff_ids) + tuple(d for d, _ in new_layers)
    history = [{"created": spec.created, "created_by": "base image layer", "comment": "smenv"} for _ in base_diff_ids]
    history += [{"created": spec.created, "created_by": what, "comment": "smenv"} for _, what in new_layers]
    document = {
        "architecture": architecture,
        "os": os_name,
        "created": spec.created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": history,
    }
    data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return ImageConfig(data, diff_ids)


def _merge_env(base: Sequence[str], ours: Sequence[tuple[str, str]]) -> list[str]:
    """Dockerfile ENV semantics: a name set again keeps its place and takes the new value."""
    merged: dict[str, str] = {}
    for item in base:
        name, _, value = item.partition("=")
        merged[name] = value
    for name, value in ours:
        merged[name] = value
    return [f"{name}={value}" for name, value in merged.items()]


def docker_archive(archive: Archive) -> Iterator[bytes]:
    """The archive `docker load` reads (and `docker save` writes), streamed.

    The manifest lists every layer of every image; only the layers in `archive.layers` are in it. For
    the engine's own load that is what it lacks; a complete archive, for other tools, carries all.
    """
    manifest = []
    for image in archive.images:
        hex_id = image.config.image_id.split(":")[1]
        yield tar_member(f"{hex_id}.json", len(image.config.data)) + image.config.data + tar_padding(len(image.config.data))
        manifest.append({
            "Config": f"{hex_id}.json",
            "RepoTags": list(image.tags),
            "Layers": [f"{d.split(':')[1]}/layer.tar" for d in image.config.diff_ids],
        })
    for diff_id, path in sorted(archive.layers.items()):
        size = path.stat().st_size
        yield tar_member(f"{diff_id.split(':')[1]}/layer.tar", size)
        yield from file_chunks(path)
        yield tar_padding(size)
    data = json.dumps(manifest, separators=(",", ":")).encode()
    yield tar_member("manifest.json", len(data)) + data + tar_padding(len(data))
    yield TAR_END
