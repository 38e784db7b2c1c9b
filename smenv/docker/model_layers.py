"""The model's part of the image: each large file in a layer of its own, everything else in one layer.

A new model version often leaves its largest files alone (frozen embeddings, a vocabulary, assets),
and the engine's load reads a layer only when it lacks the chain that ends in it (assemble.py). A
large file's layer holds that file and its parent directories only, so its diff ID is a function of
its place in the image and its bytes: an unchanged file gives the same diff ID, which the stat cache
knows without reading the file, and the layer is neither written nor sent. Layers are ordered by path,
so the same model always gives the same layers and image ID.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from smenv.docker.layers import MTIME, Entry, Layer, layer_from_entries
from smenv.stat_cache import StatCache, stamp

BIG_FILE = 64 << 20  # a file this large gets a layer of its own
MAX_FILE_LAYERS = 8  # the largest ones only: overlay filesystems limit the number of layers an image has
_FORMAT = "1"  # bump when layer_from_entries' bytes change, so cached diff IDs are not reused


@dataclass(frozen=True)
class PlannedLayer:
    entries: tuple[Entry, ...]
    history: str  # the image history's line for it
    big: Entry | None = None  # the one large file it holds, None for the layer with everything else


@dataclass(frozen=True)
class MadeLayer:
    diff_id: str
    history: str
    path: Path | None  # the layer tar, None when the engine already has it (nothing to send)


def split(entries: Sequence[Entry], rest_history: str) -> list[PlannedLayer]:
    """One layer for each of the (at most MAX_FILE_LAYERS) largest files over BIG_FILE, in path order,
    then one with the rest."""
    sized = [(e.source.stat().st_size, e.name) for e in entries if e.source is not None]
    big_names = {name for size, name in sorted(sized, key=lambda s: (-s[0], s[1]))[:MAX_FILE_LAYERS] if size >= BIG_FILE}
    big = sorted((e for e in entries if e.name in big_names), key=lambda e: e.name)
    planned = [PlannedLayer((e,), f"smenv: /{e.name.strip('/')} (a large model file, a layer of its own)", e) for e in big]
    planned.append(PlannedLayer(tuple(e for e in entries if e.name not in big_names), rest_history))
    return planned


def make_layers(planned: Sequence[PlannedLayer], below: Sequence[str], scratch: Path,
                engine_has: Callable[[Sequence[str]], bool]) -> list[MadeLayer]:
    """The layers, on top of the image's layers `below`: a large-file layer whose diff ID the stat cache
    knows and whose chain the engine has is not written; every other layer is written to `scratch`.

    `engine_has(diff_ids)` says whether the engine has an image whose layers start with `diff_ids`.
    """
    cache = StatCache("layers")
    made: list[MadeLayer] = []
    chain = list(below)
    try:
        for i, layer in enumerate(planned):
            at = _stamp(layer.big) if layer.big is not None else None
            known = cache.get(at)
            if known is not None and not engine_has(chain + [known]):
                known = None  # the engine lacks this chain: the layer has to be sent
            if known is not None:
                made.append(MadeLayer(known, layer.history, None))
            else:
                tar: Layer = layer_from_entries(layer.entries, scratch / f"layer-{i}.tar")
                cache.put(at, tar.diff_id)
                made.append(MadeLayer(tar.diff_id, layer.history, tar.path))
            chain.append(made[-1].diff_id)
    finally:
        cache.save()
    return made


def _stamp(entry: Entry):
    # Everything the layer's bytes depend on besides the file's content.
    return stamp(entry.source, f"{_FORMAT}:{entry.name.strip('/')}:{entry.uid}:{entry.mode}:{MTIME}")
