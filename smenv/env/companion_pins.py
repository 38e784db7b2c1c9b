"""Version rules for companion packages, from smenv/data/companion_releases.json (sources inside)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from packaging.version import Version

from smenv.env.releases import Release


@cache
def _rules() -> dict[str, dict]:
    text = resources.files("smenv.data").joinpath("companion_releases.json").read_text(encoding="utf-8")
    return json.loads(text)["packages"]


def names() -> list[str]:
    return sorted(_rules())


def known(name: str) -> bool:
    return name in _rules()


def specifier(name: str, release: Release) -> str | None:
    """The version specifier for `name` next to `release`: "" for any version, None for none exists."""
    rule = _rules().get(name)
    if rule is None:
        return ""
    v = Version(release.version)
    kind = rule["rule"]
    if kind == "any":
        return ""
    if kind == "series":
        minor = Version(release.minor)
        if minor < Version(rule["since"]):
            return rule.get("before")  # None: the package has no release for this TensorFlow
        if "until" in rule and minor > Version(rule["until"]):
            return ""  # past the series: TensorFlow's own requirement decides
        return f"=={v.major}.{v.minor}.*"
    return rule["table"].get(release.minor)


def describe(name: str) -> str:
    rule = _rules().get(name, {})
    if rule.get("rule") == "series":
        return f"{name} X.Y goes with TensorFlow X.Y"
    if rule.get("rule") == "table":
        return f"{name} supports TensorFlow {', '.join(sorted(rule['table'], key=Version))}"
    return "no version rule"
