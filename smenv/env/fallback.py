"""The nearest loadable release, when the exact one cannot be built on this host.

TF <= 2.4 needs Python <= 3.8 and TF 1.15 <= 3.7, for which no Debian release ships a python3; with
no registry to pull the official image from, their base cannot be obtained. The policy (which releases
build here from wheels, and which releases load a model of a given format and producer, with sources)
is data: smenv/data/release_fallbacks.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from packaging.specifiers import SpecifierSet

from smenv.env import releases
from smenv.env.bases import BaseAvailability
from smenv.env.releases import Release


@dataclass(frozen=True)
class Fallback:
    release: Release
    why: str  # why it loads the model
    buildable: str  # why it builds here


@cache
def _policy() -> dict:
    return json.loads(resources.files("smenv.data").joinpath("release_fallbacks.json").read_text(encoding="utf-8"))


def obtainable_pythons(release: Release, bases: BaseAvailability) -> list[str]:
    return [p for p in release.python if bases.how(p)]


def nearest_loadable(model_format: str, exact: Release, bases: BaseAvailability) -> Fallback | None:
    """The oldest release that builds on this host and loads a `model_format` model `exact` would load;
    None when no rule covers the model (then the exact release is kept, with a warning)."""
    policy = _policy()
    buildable = SpecifierSet(policy["buildable"]["specifier"])
    for rule in policy["rules"]:
        if model_format not in rule["formats"]:
            continue
        if rule["producer"] != "*" and not SpecifierSet(rule["producer"]).contains(exact.v, prereleases=True):
            continue
        loads = SpecifierSet(rule["loads_in"])
        fitting = [r for r in releases.table()
                   if loads.contains(r.v) and buildable.contains(r.v) and obtainable_pythons(r, bases)]
        if not fitting:
            return None
        oldest_minor = fitting[0].minor
        chosen = [r for r in fitting if r.minor == oldest_minor][-1]  # that minor's newest patch
        return Fallback(chosen, rule["why"], policy["buildable"]["why"])
    return None
