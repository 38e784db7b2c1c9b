"""The model's inputs, on the host side of verification.

- `check_sample_names`: the arrays of a `--sample-input` file must be named after the model's inputs;
  checked on the host before anything is built or run, so a typo is a one-line usage error (exit 2).
- `review_calls`: what the verifier's calls mean. The verifier (smenv/runtime/verify.py) makes up the
  inputs the sample does not hold; when the model rejects made-up input, that signature is "not
  checked" (with which input, what was fed, the error's first line, and the advice `--sample-input`),
  and a model that loaded is not reported as failing: the verdict is OK with notes, exit 0. A call that
  fails on the user's own sample stays a failure (call_failed, exit 31), and so does a call whose error
  names something the environment lacks (a module, an op: diagnose's rules), whatever it was fed.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from smenv.errors import SampleInputError
from smenv.verify.diagnose import diagnose

_FUNCTION_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*")  # TensorFlow's prefix naming the graph function
SAMPLE_ADVICE = "give real input with --sample-input FILE.npz (to smenv build or smenv verify), one array named after each input"


def input_names(model: dict) -> set[str]:
    """Every input name the model's facts (smenv.json's `model`) record: signature keys and Keras inputs."""
    names: set[str] = set()
    for group in ("signatures", "call_hints"):
        for sig in model.get(group) or []:
            if not isinstance(sig, dict) or str(sig.get("name") or sig.get("signature") or "").startswith("__"):
                continue
            names.update(t["name"] for t in sig.get("inputs") or [] if isinstance(t, dict) and isinstance(t.get("name"), str))
    return names


def check_sample_names(path: Path, model: dict, arrays: Iterable[str] | None = None) -> None:
    """SampleInputError (exit 2) when an array of the sample is named after no input of the model.

    `arrays`: the array names, when the caller has read them already; else they are read from the zip
    directory (the file must have passed smenv.verify.sample.check_sample_input). A model whose facts
    record no input names (a subclassed Keras model) is not checked.
    """
    known = input_names(model)
    if not known:
        return
    if arrays is None:
        if not zipfile.is_zipfile(path):
            return  # not an .npz at all: check_sample_input's to say
        with zipfile.ZipFile(path) as zf:
            arrays = [n.removesuffix(".npy") for n in zf.namelist()]
    # Keras 2 names a Sequential model's input after its first layer plus "_input", and the verifier takes either.
    stray = [a for a in arrays if not ({a, a + "_input", a.removesuffix("_input")} & known)]
    if stray:
        listed = ", ".join(sorted(known)[:12]) + (", ..." if len(known) > 12 else "")
        raise SampleInputError(
            f"array(s) {', '.join(repr(a) for a in stray)} match no input of the model (its inputs: {listed}); "
            "name each array after the input it feeds, e.g. numpy.savez(FILE, " + f"{sorted(known)[0]}=...)",
            path,
        )


@dataclass(frozen=True)
class NotChecked:
    """A signature the model was not checked on, because it rejected input smenv made up."""

    signature: str
    reason: str  # which input, what was fed, the error's first line
    advice: str = SAMPLE_ADVICE

    def to_json(self) -> dict:
        return {"signature": self.signature, "reason": self.reason, "advice": self.advice}


@dataclass(frozen=True)
class Review:
    result: dict | None  # the verifier's result, as the verdict should read it
    not_checked: tuple[NotChecked, ...] = ()
    excused_exit: bool = False  # the verifier exited 1 for a call that is no failure (an older verifier's way)


def review_calls(result: dict | None, plan: dict, sample_given: bool) -> Review:
    """Which calls were not checked, and whether a failed call fails the verification."""
    if not isinstance(result, dict):
        return Review(result)
    signatures = [s for s in result.get("signatures") or [] if isinstance(s, dict)]
    if not result.get("ok"):
        if result.get("stage") != "call" or sample_given or not isinstance(result.get("error"), dict):
            return Review(result)
        # A verifier from before made-up inputs were reported (images of an older smenv) raised on the
        # first call that failed: without a sample, that input was made up.
        error = result["error"]
        if _environment_cause(error, plan):
            return Review(result)
        name = next((s.get("name") for s in signatures if s.get("primary")), None) or (
            "keras_model" if (plan.get("environment") or {}).get("loader") == "keras" else "serving_default")
        note = NotChecked(name, f"calling it with made-up input (zeros, empty strings or random floats) failed: {_error_line(error)}")
        reviewed = {**result, "ok": True, "stage": "done", "call_error": error}
        reviewed.pop("error", None)
        return Review(reviewed, (note,) + _notes(signatures, skip=name), excused_exit=True)
    for sig in signatures:
        # A made-up input cannot explain a missing module or op: that is the environment's failure.
        if sig.get("error") and sig.get("primary") and _environment_cause(sig["error"], plan):
            failed = {**result, "ok": False, "stage": "call",
                      "error": {"type": sig["error"].get("type"), "module": None, "message": sig["error"].get("message") or "",
                                "traceback": ""}}
            return Review(failed)
    return Review(result, _notes(signatures))


def _notes(signatures: list[dict], skip: str | None = None) -> tuple[NotChecked, ...]:
    notes = []
    for sig in signatures:
        error = sig.get("error")
        if not isinstance(error, dict) or sig.get("name") == skip:
            continue
        name = str(sig.get("name") or "?")
        made_up = [i for i in sig.get("inputs") or [] if isinstance(i, dict) and i.get("synthetic")]
        if sig.get("synthetic") is False and not made_up:
            # Fed nothing made up (no inputs at all, or all from the sample) and still not fatal: a secondary signature.
            what = "with the sample input" if sig.get("inputs") else "with no input"
            notes.append(NotChecked(name, f"calling it {what} failed: {_error_line(error)}",
                                    "this signature is not the one served by default; the model itself answered"))
            continue
        notes.append(NotChecked(name, f"calling it with made-up input failed: {_error_line(error)}{_fed(made_up, error, sig)}"))
    return tuple(notes)


def _fed(made_up: list[dict], error: dict, sig: dict) -> str:
    """What was fed: the input the error names, else every made-up input (the first three)."""
    if not made_up:
        return ""
    message = str(error.get("message") or "")
    named = [i for i in made_up if i.get("name") and str(i["name"]) in message]
    shown = named[:1] or made_up[:3]
    text = "; ".join(f"{i.get('name')}: {i.get('fed') or i.get('dtype')}" for i in shown)
    more = len(made_up) - len(shown) if not named else 0
    tried = sig.get("lengths_tried")
    lengths = f"; lengths {', '.join(str(n) for n in tried)} tried" if isinstance(tried, list) and tried else ""
    return f" (fed {text}{f' and {more} more made-up input(s)' if more > 0 else ''}{lengths})"


def _environment_cause(error: dict, plan: dict) -> bool:
    """Whether diagnose's rules recognise the error as something the image lacks (not the input's fault)."""
    probe = {"ok": False, "stage": "call", "signatures": [],
             "error": {"type": error.get("type"), "module": error.get("module"), "message": str(error.get("message") or ""),
                       "traceback": str(error.get("traceback") or "")}}
    return diagnose(probe, plan).kind != "call_failed"


def _error_line(error: dict) -> str:
    """The error's first line; for Keras' "Exception encountered when calling layer ...", the cause after it too."""
    lines = [line.strip() for line in str(error.get("message") or "").splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if first.startswith("Exception encountered when calling") and len(lines) > 1:
        first = f"{first.rstrip('.')}: {_FUNCTION_NODE.sub('', lines[1])}"
    if len(first) > 200:
        first = first[:197] + "..."
    kind = error.get("type") or "Error"
    return f"{kind}: {first}" if first else str(kind)
