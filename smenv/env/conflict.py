"""uv's "no solution" explanation, said in one or two sentences that name what the user can change.

uv explains a failed resolution as a chain of derivations ("Because A==1 depends on B<2 and you
require A==1, we can conclude that you require B<2. And because you require B>=2, ..."), 400-900
characters that name no file. The packages the user (or the model) asked for are the ones in the
plan, and each carries its origin ("requirements <file>:<line>", "model", "companion rule"), so the
short form names the requirements line that brought each in. The full text stays available (the
error's `details`, in --json and the lock log). tests/test_uv_contract.py checks the phrases read here.
"""

from __future__ import annotations

import re

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from smenv.env.plan import EnvironmentPlan

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_SPEC = r"(?:\[[^\]]*\])?(?:[=<>!~]=?[^\s,]*(?:,[=<>!~]=?[^\s,]*)*)?"
# "A==1 depends on B<2", or "A==1 depends on one of:" followed by one range per line.
_DEPENDS = re.compile(rf"({_NAME}{_SPEC}) depends on (one of:((?:\n[ \t]+{_NAME}[=<>!~][^\s]*)+)|{_NAME}{_SPEC})")
_SAFE_TAIL = re.compile(r"[.,;:]+$")
_FIRST_CAUSE = re.compile(r"Because (.+?)(?: and you require|, we can conclude| and [^ ]+ depends on)")


def describe(uv_text: str, plan: EnvironmentPlan, python: str) -> str | None:
    """The conflict in a sentence or two, or None when uv's text is not a conflict this can read."""
    text = " ".join(uv_text.split())
    requested = _requested(plan)
    mentioned = list(dict.fromkeys(
        entry for name, entries in requested.items()
        if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text, re.I)
        for entry in entries
    ))
    if not mentioned:
        return None
    involved = " and ".join(f"{requirement} ({origin})" for requirement, origin in mentioned[:4])
    verb = "cannot be installed together" if len(mentioned) > 1 else "cannot be installed"
    sentence = f"no environment for Python {python}: {involved} {verb}"
    because = [f"{who} needs {what}" for who, what in _depends(uv_text) if _canon(who) in requested][:2]
    if not because:  # e.g. "foo was not found in the package registry", "there is no version of foo==9"
        first = _FIRST_CAUSE.search(text)
        because = [first.group(1)] if first else []
    if because:
        sentence += f" ({'; '.join(because)})"
    return sentence


def _requested(plan: EnvironmentPlan) -> dict[str, list[tuple[str, str]]]:
    """canonical name -> [(the requirement as given, where it came from)], for every package the plan asks
    for (a name can come from two lines: `numpy==1.26.4` and `numpy==1.24.0`)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for package in plan.packages:
        name = _canon(package.requirement)
        if not name:
            continue
        out.setdefault(name, []).append((package.requirement, _origin(package.origin, name, plan)))
        if name == canonicalize_name(plan.tensorflow_package.split("[")[0]) and name != "tensorflow":
            # The CPU lock's first pass resolves with `tensorflow` itself (lock.py): uv names that.
            out["tensorflow"] = out[name]
    for constraint in plan.constraints:
        name = _canon(constraint)
        if name and name not in out:
            out[name] = [(constraint, "a constraint")]
    return out


def _origin(origin: str, name: str, plan: EnvironmentPlan) -> str:
    if origin.startswith("requirements "):
        return origin.removeprefix("requirements ")
    if origin == "model":
        return "the model's TensorFlow" if name.startswith("tensorflow") else "the model's Keras" if name == "keras" else "the model"
    if origin == "companion rule":
        return "the companion release for this TensorFlow"
    return origin


def _depends(uv_text: str) -> list[tuple[str, str]]:
    """(requirer, what it needs), e.g. ("tensorflow==2.15.1", "numpy>=1.23.5,<2.0.0"), in uv's order."""
    out = []
    for m in _DEPENDS.finditer(uv_text):
        who = _SAFE_TAIL.sub("", m.group(1))
        if m.group(3):  # a union of ranges, one per line: from the first's lower bound to the last's upper
            ranges = m.group(3).split()
            name = _canon(ranges[0])
            lower = _bound(ranges[0], ">")
            upper = _bound(ranges[-1], "<")
            what = f"{name}{','.join(b for b in (lower, upper) if b)}" if name else ranges[0]
        else:
            what = _SAFE_TAIL.sub("", m.group(2))
        if (who, what) not in out:
            out.append((who, what))
    return out


def _bound(requirement: str, side: str) -> str:
    try:
        spec = Requirement(requirement).specifier
    except InvalidRequirement:
        return ""
    return next((str(s) for s in spec if s.operator.startswith(side)), "")


def _canon(requirement: str) -> str:
    try:
        return canonicalize_name(Requirement(_SAFE_TAIL.sub("", requirement)).name)
    except InvalidRequirement:
        return ""
