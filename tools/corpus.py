#!/usr/bin/env python3
"""`make corpus`: build and verify every model in ../shared/corpus and tests/fixtures/models, as a new user
would (no flags beyond the model, its custom-layer module where it has one, and --json; two fixtures get
the one choice only their user can make, see CHOICES), and write the table to docs/corpus.md: model, producer, the TensorFlow and Python smenv chose (and whether that is the
model's own release), the result, and the time each build took.

    .venv/bin/python tools/corpus.py [--only NAME ...] [--timeout SECONDS]

A model that fails is a row, not a stop: the table is what a user would meet. Exit status 0 when every
model builds and loads, 3 otherwise (the table says which and why).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
FIXTURES = REPO / "tests" / "fixtures" / "models"
USERCODE = REPO / "tests" / "fixtures" / "usercode"
SMENV = REPO / ".venv" / "bin" / "smenv"
OUT = REPO / "docs" / "corpus.md"
RAW = REPO / "build" / "corpus"  # each model's `smenv build --json` answer, exit and time

# What smenv cannot decide from a model's files and leaves to its user, given as the user would: the code
# that builds a weights-only file's model, and trust in a Lambda layer's bytecode (Keras refuses it by
# default). Shown in the table's model column.
CHOICES = {
    "tf215-weights.h5": ["--code", str(USERCODE / "smenv_fixture_builders.py"),
                         "--model-builder", "smenv_fixture_builders:tiny_functional"],
    "tf218-keras3-lambda.keras": ["--unsafe-deserialization"],
}


def models() -> list[tuple[str, Path, list[str]]]:
    """(table name, path, the flags beyond the model)."""
    found: list[tuple[str, Path, list[str]]] = [(p.name, p, []) for p in sorted(CORPUS.iterdir()) if p.is_dir()]
    expected = json.loads((FIXTURES / "EXPECTED.json").read_text())
    for name in sorted(expected):
        path = FIXTURES / name
        if not path.exists():
            continue
        modules = {c.get("module") for c in expected[name].get("custom_objects") or [] if isinstance(c, dict)}
        code = [USERCODE / f"{m}.py" for m in sorted(m for m in modules if m) if (USERCODE / f"{m}.py").is_file()]
        flags = [arg for c in code for arg in ("--code", str(c))] + CHOICES.get(name, [])
        found.append((f"fixture {name}", path, flags))
    return found


def build(path: Path, flags: list[str], timeout: float) -> dict:
    cmd = [str(SMENV), "build", str(path), "--json", *flags]
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"exit": None, "seconds": timeout, "error": f"no answer in {timeout:.0f} s"}
    seconds = time.monotonic() - started
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        result = {}
    error = (proc.stderr.strip().splitlines() or [""])[-1]
    return {"exit": proc.returncode, "seconds": round(seconds, 1), "result": result, "error": error}


def row(name: str, outcome: dict) -> str:
    result = outcome.get("result") or {}
    plan = result.get("plan") or {}
    model = plan.get("model") or {}
    env = plan.get("environment") or {}
    # .keras and .h5 files record the Keras that wrote them, not TensorFlow's version
    producer = model.get("tensorflow_version") or (f"Keras {model['keras_version']}" if model.get("keras_version") else "?")
    chosen = env.get("tensorflow_version") or "?"
    # environment.exact_release names the model's own release when the plan had to move off it.
    exact = f"no (its own: {env['exact_release']})" if env.get("exact_release") else "yes"
    verdict = result.get("verification") or {}
    if not verdict:
        status = "not built"
    elif verdict.get("ok"):
        status = "loads" + (f", {len(verdict.get('not_checked') or [])} signature(s) not checked" if verdict.get("not_checked") else "")
        status += ", served" if (verdict.get("serve") or {}).get("ok") else ""
    else:
        status = "fails"
    diagnosis = verdict.get("diagnosis") or {}
    said = diagnosis.get("summary") or (outcome.get("error") if outcome.get("exit") else "") or ""
    return (f"| {name} | {producer} | {chosen} | {exact} | {env.get('python', '?')} | {outcome.get('exit')} "
            f"| {status} | {outcome.get('seconds')} s | {_cell(_reason(env, 'tensorflow'))} | {_cell(_reason(env, 'python'))} "
            f"| {_cell(said)} |")


def _choices(name: str) -> str:
    """The user's choices (CHOICES) for the model column, with repository paths shortened."""
    flags = CHOICES.get(name.removeprefix("fixture "))
    if not flags:
        return ""
    return " (`" + " ".join(f.replace(str(USERCODE) + "/", "") for f in flags) + "`)"


def _reason(env: dict, topic: str) -> str:
    """The plan's reason for one decision (environment.decisions), as smenv gave it."""
    return next((d.get("reason") or "" for d in env.get("decisions") or [] if d.get("topic") == topic), "")


def _cell(text: str, limit: int = 220) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main() -> int:
    parser = argparse.ArgumentParser(description="Build and verify every corpus and fixture model; write docs/corpus.md.")
    parser.add_argument("--only", nargs="*", help="model names (as in the table) to run")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per model (default 1800)")
    args = parser.parse_args()
    chosen = [m for m in models() if not args.only or m[0] in args.only or m[0].removeprefix("fixture ") in args.only]
    rows, failed = [], 0
    started = time.monotonic()
    for i, (name, path, flags) in enumerate(chosen, 1):
        print(f"corpus: [{i}/{len(chosen)}] {name}", file=sys.stderr, flush=True)
        outcome = build(path, flags, args.timeout)
        RAW.mkdir(parents=True, exist_ok=True)  # every answer kept: the table can be written again from them
        (RAW / f"{name.replace(' ', '-')}.json").write_text(json.dumps(outcome, indent=1))
        failed += outcome.get("exit") != 0
        rows.append(row(name + _choices(name), outcome))
        print(f"corpus:   {rows[-1]}", file=sys.stderr, flush=True)
    header = [
        "# Every corpus and fixture model, built and verified",
        "",
        f"Written by `make corpus` (tools/corpus.py) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{len(chosen)} models in {(time.monotonic() - started) / 60:.0f} min, on a machine "
        f"{'with' if os.environ.get('SMENV_BASE_REGISTRY') else 'without'} a registry: `smenv build MODEL --json` "
        "(plus `--code` for a fixture's custom-layer module, and the choice only its user can make where the model "
        "column shows one), nothing else. \"exact\" says whether the TensorFlow "
        "used is the model's own release (a nightly or rc producer maps to its final release), or the nearest "
        "release that loads it because its own cannot be built on this host. \"verdict\" says \"served\" when the "
        "image's own command then served the model and answered a prediction through the served API; the two "
        "\"why\" columns are the plan's own reasons (environment.decisions).",
        "",
        "| model | producer | TensorFlow used | exact | Python | exit | verdict | time | why this TensorFlow | why this Python | what smenv said |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    if not args.only:
        OUT.write_text("\n".join(header + rows) + "\n")
        print(f"corpus: {len(chosen) - failed}/{len(chosen)} built and loaded; table in {OUT}", file=sys.stderr)
    else:
        print("\n".join(header + rows))
    return 0 if failed == 0 else 3


if __name__ == "__main__":
    sys.exit(main())
