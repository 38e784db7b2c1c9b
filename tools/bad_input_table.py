#!/usr/bin/env python3
"""Print the README's "Bad input" table: each input tried, and exactly what smenv answers.

Every row is produced by running the real CLI on a file made here, so the table cannot drift from the
code: tests/test_bad_input_table.py runs this and compares its output with the README. The temporary
directory's path is shown as `<dir>`. Nothing here needs Docker, a network or a lock.

    python3 tools/bad_input_table.py            # print the table
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "tests" / "fixtures" / "models"
GOOD = MODELS / "tf215-savedmodel"
BUILDERS = REPO / "tests" / "fixtures" / "usercode" / "smenv_fixture_builders.py"


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _bomb(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", "{}")
        with zf.open("model.weights.h5", "w", force_zip64=True) as member:
            block = b"\0" * (1 << 20)
            for _ in range(3 * 1024):  # 3 GiB of zeros, a few MB compressed
                member.write(block)
    return path


def _h5(path: Path, attrs: dict[str, str]) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
    return path


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def cases(d: Path) -> list[tuple[str, list[str]]]:
    """(what was tried, the smenv arguments); each builds its input under `d`."""
    def sub(name: str) -> Path:
        p = d / name
        p.mkdir()
        return p

    empty = sub("empty")
    nomodel = sub("nomodel")
    (nomodel / "notes.txt").write_text("hello")
    truncated = sub("truncated")
    (truncated / "saved_model.pb").write_bytes((GOOD / "saved_model.pb").read_bytes()[:-9])
    random_pb = sub("random")
    (random_pb / "saved_model.pb").write_bytes(bytes((i * 37 + 11) % 256 for i in range(4096)))
    deep = d / "deep.keras"
    _zip(deep, {"config.json": b"[" * 100_000 + b"]" * 100_000})
    selfref = sub("selfref")
    return [
        ("a path that does not exist", ["inspect", str(d / "missing")]),
        ("an empty directory", ["inspect", str(empty)]),
        ("a directory with no model in it", ["inspect", str(nomodel)]),
        ("`saved_model.pb` cut short by 9 bytes", ["inspect", str(truncated)]),
        ("`saved_model.pb` of random bytes", ["inspect", str(random_pb)]),
        ("`.keras` that is not a zip", ["inspect", str(_text(d / "notzip.keras", "just text"))]),
        ("`.keras` with a `../../x` member", ["inspect", str(_zip(d / "traversal.keras", {"config.json": b"{}", "../../x": b"x"}))]),
        ("`.keras` inflating to 3 GiB", ["inspect", str(_bomb(d / "bomb.keras"))]),
        ("`.keras` whose config.json nests 100,000 levels", ["inspect", str(deep)]),
        ("`.h5` with no Keras attributes", ["inspect", str(_h5(d / "plain.h5", {"note": "hdf5, not keras"}))]),
        ("`.h5` cut in half", ["inspect", _half_h5(d)]),
        ("weights-only `.h5`, to build", ["generate", str(MODELS / "tf215-weights.h5"), "--dry-run"]),
        ("weights-only `.h5`, `--model-builder` naming a function its module lacks",
         ["generate", str(MODELS / "tf215-weights.h5"), "--code", str(BUILDERS), "--model-builder", "smenv_fixture_builders:tiny", "--dry-run"]),
        ("`--model-builder` whose module is not given with `--code`",
         ["generate", str(MODELS / "tf215-weights.h5"), "--model-builder", "my_model:build", "--dry-run"]),
        ("`--model-builder` for a whole model", ["generate", str(MODELS / "tf215-full.h5"), "--code", str(BUILDERS),
                                                 "--model-builder", "smenv_fixture_builders:tiny_functional", "--dry-run"]),
        ("requirements.txt that does not exist", ["generate", str(GOOD), "-r", str(d / "nope.txt"), "--dry-run"]),
        ("requirements line `numpy==`", ["generate", str(GOOD), "-r", str(_text(d / "bad-line.txt", "numpy==\n")), "--dry-run"]),
        ("requirements line `-e ./src`", ["generate", str(GOOD), "-r", str(_text(d / "editable.txt", "-e ./src\n")), "--dry-run"]),
        ("requirements line `git+https://...`", ["generate", str(GOOD), "-r", str(_text(d / "vcs.txt", "git+https://example.org/x.git#egg=x\n")), "--dry-run"]),
        ("requirements that include themselves", ["generate", str(GOOD), "-r", str(_text(selfref / "requirements.txt", "-r requirements.txt\n")), "--dry-run"]),
        ("`--tf-version 2.99.0`", ["generate", str(GOOD), "--tf-version", "2.99.0", "--dry-run"]),
        ("`--tf-version latest`", ["generate", str(GOOD), "--tf-version", "latest", "--dry-run"]),
        ("`--python 3.x`", ["generate", str(GOOD), "--python", "3.x", "--dry-run"]),
        ("`--python 3.13` for a TensorFlow 2.15 model", ["generate", str(GOOD), "--python", "3.13", "--dry-run"]),
        ("`--as-of yesterday`", ["generate", str(GOOD), "--as-of", "yesterday", "--dry-run"]),
        ("`-o` onto an existing file", ["generate", str(GOOD), "-o", str(_text(d / "taken", "x"))]),
        ("`-o` inside the model directory", ["generate", str(GOOD), "-o", str(GOOD / "out")]),
        ("`smenv base --python 3.x`", ["base", "--python", "3.x"]),
        ("Docker engine not running", ["build", str(GOOD)]),
    ]


def _half_h5(d: Path) -> str:
    data = (MODELS / "tf215-full.h5").read_bytes()
    path = d / "half.h5"
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def answer(args: list[str], d: Path) -> tuple[int, str]:
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200", DOCKER_HOST="unix:///nonexistent/docker.sock")
    proc = subprocess.run([sys.executable, "-m", "smenv", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=REPO)
    # Progress lines ("smenv: reading the model") come first on stderr; the error is the one error line.
    errors = [line for line in proc.stderr.splitlines() if line.startswith("smenv: error:")]
    said = errors[0] if len(errors) == 1 and "Traceback" not in proc.stderr else "NOT ONE ERROR LINE: " + proc.stderr
    return proc.returncode, said.replace(str(d), "<dir>").replace(str(REPO) + "/", "")


def table() -> str:
    rows = ["| input tried | exit | what the user sees (stderr, one line) |", "|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="smenv-bad-") as tmp:
        d = Path(tmp)
        for what, args in cases(d):
            code, said = answer(args, d)
            cell = said.replace("|", "\\|")  # double backticks: some messages quote commands in backticks
            rows.append(f"| {what} | {code} | `` {cell} `` |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
