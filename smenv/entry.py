"""The `smenv` console script. `smenv inspect ... --json` is answered without loading typer and rich.

`inspect --json` is the interface scripts and pipelines call, often once per model; typer and rich
take ~0.2 s to import, three times what reading a SavedModel takes. This front serves exactly the
forms `smenv inspect MODEL --json [--model-version N] [--tags T]` and hands anything else (help, an
unknown option, the readable view) to the typer app, which stays the one definition of the CLI.
tests/test_entry.py holds both paths to the same output and exit codes.
"""

from __future__ import annotations

import json
import sys


def try_inspect_json(argv: list[str]) -> int | None:
    """The exit code when this front handled argv; None to let typer handle it."""
    if not argv or argv[0] != "inspect" or "--json" not in argv:
        return None
    model = version = tags = None
    rest = [a for a in argv[1:] if a != "--json"]
    i = 0
    while i < len(rest):
        arg = rest[i]
        name, eq, value = arg.partition("=")
        if name in ("--model-version", "--tags"):
            if not eq:
                if i + 1 >= len(rest):
                    return None
                value, i = rest[i + 1], i + 1
            if name == "--tags":
                tags = value
            elif value.isdigit():
                version = int(value)
            else:
                return None  # typer reports the bad number
        elif arg.startswith("-") or model is not None:
            return None
        else:
            model = arg
        i += 1
    if model is None:
        return None
    from pathlib import Path

    from smenv.errors import SmenvError
    from smenv.model.inspect import inspect_model

    tag_tuple = tuple(t.strip() for t in tags.split(",") if t.strip()) if tags else None
    try:
        facts = inspect_model(Path(model), version=version, tags=tag_tuple)
    except SmenvError as exc:
        sys.stdout.write(json.dumps({"ok": False, "error": exc.to_json()}, indent=2) + "\n")
        sys.stderr.write(f"smenv: error: {exc}\n")
        return exc.exit_code
    sys.stdout.write(json.dumps(facts.to_json(), indent=2) + "\n")
    return 0


def main() -> None:
    code = try_inspect_json(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    import signal

    from smenv.cli import app  # typer, rich: only when the full CLI is needed
    from smenv.errors import Terminated

    def terminate(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, terminate)
    app(prog_name="smenv")
