"""The `smenv` command line: parse options, call the core, hand the result to `console`.

Exit codes (also in the README):
  0 success · 1 internal error (a bug: please report it) · 2 usage error
  3 model not found · 4 invalid or unreadable model · 5 unsafe model file
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from smenv import __version__, console
from smenv.errors import SmenvError

app = typer.Typer(
    name="smenv",
    help=(
        "Read a TensorFlow/Keras model statically and turn it into a container environment that loads it.\n\n"
        "Start with `smenv inspect MODEL` to see what the model itself records: format, producer TensorFlow "
        "and Keras versions, signatures, every op, custom objects and companion packages."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of the readable view.")]


@contextmanager
def _handled(as_json: bool):
    """Turn smenv's typed errors into one line and their exit code; never show a traceback."""
    try:
        yield
    except SmenvError as exc:
        console.print_error(exc, as_json)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        console.err.print("smenv: interrupted")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # a bug: say so plainly, keep the traceback for SMENV_DEBUG=1
        if os.environ.get("SMENV_DEBUG"):
            raise
        internal = SmenvError(f"internal error: {type(exc).__name__}: {exc} (rerun with SMENV_DEBUG=1 and report it)")
        console.print_error(internal, as_json)
        raise typer.Exit(1) from None


def _version_callback(value: bool) -> None:
    if value:
        console.out.print(f"smenv {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version.")
    ] = None,
) -> None:
    """smenv: make a TensorFlow/Keras model load anywhere."""


@app.command()
def inspect(
    model: Annotated[
        Path,
        typer.Argument(
            help="A SavedModel directory, a TF Serving base directory (numeric version sub-directories), "
            "a `.keras` archive, or a legacy `.h5`/`.hdf5` file.",
            show_default=False,
        ),
    ],
    as_json: JsonOption = False,
    model_version: Annotated[
        Optional[int],
        typer.Option("--model-version", help="In a TF Serving base directory, the version to read (default: the highest)."),
    ] = None,
    tags: Annotated[
        Optional[str],
        typer.Option("--tags", help="Comma-separated meta graph tags to read (default: the graph tagged `serve`, else the first)."),
    ] = None,
) -> None:
    """Show what a model records about itself, without TensorFlow.

    Reads only the model's metadata (never its variables), so it is fast on multi-gigabyte models and
    safe on untrusted ones: no model code is run.

    **Examples**

    `smenv inspect ./export/1` · `smenv inspect model.keras --json | jq .tensorflow_version` ·
    `smenv inspect ./serving_base --model-version 3`
    """
    from smenv.model.inspect import inspect_model

    with _handled(as_json):
        tag_tuple = tuple(t.strip() for t in tags.split(",") if t.strip()) if tags else None
        facts = inspect_model(model, version=model_version, tags=tag_tuple)
        if as_json:
            console.print_json(facts.to_json())
        else:
            console.show_facts(facts)


def run() -> None:  # pragma: no cover - console-script shim for `python -m smenv`
    app(prog_name="smenv")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
