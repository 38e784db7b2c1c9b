"""Which companion packages (tensorflow-text, tensorflow-addons, ...) a model needs, with evidence.

The knowledge is data: smenv/data/companions.json names each package's ops, op-name prefixes,
Keras registration prefixes and Python modules, with its sources.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources

from smenv.model.facts import CompanionPackage, CustomObject


@cache
def _table() -> dict[str, dict]:
    text = resources.files("smenv.data").joinpath("companions.json").read_text(encoding="utf-8")
    return json.loads(text)["packages"]


def package_for_op(op: str) -> str | None:
    for package, rules in _table().items():
        if op in rules.get("ops", ()) or any(op.startswith(p) for p in rules.get("op_prefixes", ())):
            return package
    return None


def package_for_object(obj: CustomObject) -> str | None:
    root = (obj.module or "").split(".")[0]
    for package, rules in _table().items():
        if root and root in rules.get("modules", ()):
            return package
        if obj.registered_name and any(obj.registered_name.startswith(p) for p in rules.get("registered_prefixes", ())):
            return package
    return None


def detect(ops: Mapping[str, int], objects: Iterable[CustomObject]) -> tuple[CompanionPackage, ...]:
    evidence: dict[str, list[str]] = {}
    by_ops: dict[str, list[str]] = {}
    for op in sorted(ops):
        package = package_for_op(op)
        if package:
            evidence.setdefault(package, []).append(f"op {op} ({ops[op]} use{'s' if ops[op] != 1 else ''})")
            by_ops.setdefault(package, []).append(op)
    for obj in objects:
        package = package_for_object(obj)
        if package:
            where = obj.registered_name or f"{obj.module}.{obj.class_name}"
            evidence.setdefault(package, []).append(f"{obj.kind} {where}")
    return tuple(CompanionPackage(name, tuple(ev), tuple(by_ops.get(name, ()))) for name, ev in sorted(evidence.items()))


def op_registering_modules() -> dict[str, str]:
    """{package: Python module} for companions whose import registers TensorFlow ops."""
    return {
        package: rules["modules"][0]
        for package, rules in sorted(_table().items())
        if rules.get("modules") and (rules.get("ops") or rules.get("op_prefixes"))
    }
