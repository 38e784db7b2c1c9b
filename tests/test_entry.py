"""`smenv inspect --json` takes a typer-free front; it must answer exactly as the typer CLI does."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import CORPUS, FIXTURES

TYPER = "import sys; from smenv.cli import app; sys.argv[0] = 'smenv'; app(prog_name='smenv')"
FAST = "from smenv.entry import main; main()"


def run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "args",
    [
        ["inspect", str(CORPUS / "tfserving-half-plus-two-2-versions"), "--json"],
        ["inspect", "--json", str(CORPUS / "tfserving-half-plus-two-2-versions"), "--model-version", "123"],
        ["inspect", str(CORPUS / "tfrust-regression-model-tf1"), "--tags=train,serve", "--json"],
        ["inspect", str(FIXTURES / "models" / "tf218-keras3.keras"), "--json"],
        ["inspect", str(FIXTURES / "no-such-model"), "--json"],
        ["inspect", str(CORPUS / "tfserving-counter"), "--json", "--tags", "nope"],
    ],
)
def test_fast_front_answers_like_typer(args):
    fast, slow = run(FAST, *args), run(TYPER, *args)
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr)


@pytest.mark.parametrize("args", [["inspect", "--json"], ["inspect", "x", "--json", "--bogus"], ["inspect", "x", "--json", "--model-version", "abc"]])
def test_anything_else_goes_to_typer(args):
    from smenv.entry import try_inspect_json

    assert try_inspect_json(args) is None
    assert run(FAST, *args).returncode == 2  # typer's usage error


def test_the_fast_front_does_not_import_typer_or_rich():
    probe = (
        "import sys; from smenv.entry import try_inspect_json; "
        f"try_inspect_json(['inspect', {str(CORPUS / 'tfserving-counter')!r}, '--json']); "
        "sys.stderr.write(repr(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.stderr == "[]"
