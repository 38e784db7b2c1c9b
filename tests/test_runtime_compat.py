"""The in-image verifier (smenv/runtime/verify.py) runs on every Python the resolver may choose.

It is copied into the image and run by the image's Python, which the resolver picks from the
release's `python` list in smenv/data/tf_releases.json (the newest, an older one when the
requirements exclude it, or the one given with --python). So the oldest CPython minor in that table
is the oldest Python the verifier must run on. Three independent checks, none a hand-written list of
rules:
- vermin (PyPI), which knows the minimum Python of syntax, stdlib modules, members and keyword
  arguments;
- CPython's own parser asked for the old grammar: ast.parse(feature_version=...);
- the `__future__` module's own record of the release each future feature became available in.
"""

from __future__ import annotations

import __future__
import ast
import sys
from importlib import resources
from pathlib import Path

import pytest
import vermin

from smenv.env import releases
from smenv.env.resolve import ResolveOptions, resolve
from smenv.model.inspect import inspect_model

SOURCE = resources.files("smenv.runtime").joinpath("verify.py").read_text(encoding="utf-8")  # as render/context.py copies it


def _minor(python: str) -> tuple[int, int]:
    major, minor = python.split(".")[:2]
    return int(major), int(minor)


def oldest_python() -> tuple[int, int]:
    """The oldest CPython the resolver may choose: the oldest minor any release in the table lists."""
    return min(_minor(p) for r in releases.table() for p in r.python)


def vermin_minimum(source: str) -> tuple[int, int]:
    """The Python 3 version vermin says `source` needs (the version needed to parse it, if it cannot)."""
    visitor = vermin.visit(source, _vermin_config(), "verify.py")
    if not isinstance(visitor, vermin.SourceVisitor):  # [py2, py3] needed to parse it
        return tuple(visitor[1])
    py3 = visitor.minimum_versions()[1]
    return tuple(py3) if py3 else (3, 0)


def vermin_report(source: str) -> str:
    return vermin.visit(source, _vermin_config(), "verify.py").output_text()


def _vermin_config() -> vermin.Config:
    config = vermin.Config()  # defaults only: no config file is read
    config.set_eval_annotations(True)  # without `from __future__ import annotations`, annotations run
    config.set_parse_comments(False)  # a `# novm` comment cannot hide a line
    config.set_verbose(3)  # the reasons, for the report
    return config


# The oldest grammar the running interpreter's ast.parse(feature_version=...) still honours:
# (3, 4) in Python 3.8-3.12, (3, 7) from 3.13 ("The lowest supported version is ...", docs of ast.parse).
AST_LOWEST_MINOR = 4 if sys.version_info < (3, 13) else 7


def test_the_resolver_may_choose_the_oldest_python():
    oldest = oldest_python()
    python = "%d.%d" % oldest
    release = next(r for r in releases.table() if python in r.python)
    model = inspect_model(Path(__file__).parent / "fixtures" / "models" / "tf212-savedmodel")
    plan = resolve(model, None, ResolveOptions(tf_version=release.version, python=python))
    assert plan.python_candidates == (python,)


def test_vermin_says_the_verifier_runs_on_the_oldest_python():
    oldest = oldest_python()
    needs = vermin_minimum(SOURCE)
    assert needs <= oldest, f"verify.py needs Python {needs}, the resolver may choose {oldest}:\n{vermin_report(SOURCE)}"


def test_the_verifier_parses_with_the_oldest_grammar():
    minor = max(oldest_python()[1], AST_LOWEST_MINOR)
    ast.parse(SOURCE, filename="verify.py", feature_version=(3, minor))  # raises SyntaxError on newer syntax


def future_imports_newer_than(source: str, oldest: tuple[int, int]) -> list[str]:
    """`from __future__ import x` lines whose feature the `oldest` Python does not have yet."""
    too_new = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                available = getattr(__future__, alias.name).getOptionalRelease()[:2]
                if available > oldest:
                    too_new.append(f"line {node.lineno}: from __future__ import {alias.name} needs Python {available}")
    return too_new


def test_future_imports_exist_on_the_oldest_python():
    # The parser accepts any `from __future__ import x`; the compiler of an older Python rejects a
    # feature it does not know ("future feature annotations is not defined").
    assert future_imports_newer_than(SOURCE, oldest_python()) == []


# The instruments themselves: each construct below is newer than Python 3.5 and each check must say
# so, or a passing run above would prove nothing. (source, the Python it needs)
SYNTAX = {  # the parser's business
    "f-string": ("x = 1\ny = f'{x}'\n", (3, 6)),
    "f-string =": ("x = 1\ny = f'{x=}'\n", (3, 8)),
    "variable annotation": ("x: int = 1\n", (3, 6)),
    "walrus": ("if (n := 1):\n    pass\n", (3, 8)),
    "positional-only": ("def f(a, /):\n    return a\n", (3, 8)),
}
SEMANTICS = {  # valid old grammar, but a newer runtime or stdlib
    "future annotations": ("from __future__ import annotations\n", (3, 7)),
    "dict union": ("d = {'a': 1} | {'b': 2}\n", (3, 9)),
    "builtin generic": ("def f(x: list[int]):\n    return x\n", (3, 9)),
    "dataclasses": ("import dataclasses\n", (3, 7)),
    "capture_output": ("import subprocess\nsubprocess.run(['true'], capture_output=True)\n", (3, 7)),
    "text=": ("import subprocess\nsubprocess.run(['true'], text=True)\n", (3, 7)),
}


@pytest.mark.parametrize("source, needs", [*SYNTAX.values(), *SEMANTICS.values()], ids=[*SYNTAX, *SEMANTICS])
def test_vermin_catches_newer_python(source, needs):
    assert vermin_minimum(source) >= needs


@pytest.mark.parametrize("source, needs", SYNTAX.values(), ids=list(SYNTAX))
def test_old_grammar_rejects_newer_syntax(source, needs):
    with pytest.raises(SyntaxError):
        ast.parse(source, feature_version=(3, needs[1] - 1))


def test_future_check_catches_annotations():
    assert future_imports_newer_than("from __future__ import annotations\n", (3, 6)) == [
        "line 1: from __future__ import annotations needs Python (3, 7)"
    ]
    assert future_imports_newer_than("from __future__ import annotations\n", (3, 7)) == []
