"""The model server (smenv/runtime/serve) runs on every Python the resolver may choose.

The same three checks tests/test_runtime_compat.py makes of the verifier (vermin, CPython's parser
asked for the old grammar, the __future__ record), over every module of the package.
"""

from __future__ import annotations

from importlib import resources

import pytest

from test_runtime_compat import AST_LOWEST_MINOR, future_imports_newer_than, oldest_python, vermin_minimum, vermin_report

import ast

PACKAGE = resources.files("smenv.runtime.serve")
MODULES = sorted(p.name for p in PACKAGE.iterdir() if p.name.endswith(".py"))


def test_every_module_is_checked():
    assert {"__init__.py", "__main__.py", "adapter.py", "app.py", "codec.py", "metrics.py", "openapi.py",
            "runner.py", "server.py", "testing.py"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_vermin_says_the_server_runs_on_the_oldest_python(module):
    source = PACKAGE.joinpath(module).read_text(encoding="utf-8")
    oldest = oldest_python()
    needs = vermin_minimum(source)
    assert needs <= oldest, f"{module} needs Python {needs}, the resolver may choose {oldest}:\n{vermin_report(source)}"


@pytest.mark.parametrize("module", MODULES)
def test_the_server_parses_with_the_oldest_grammar(module):
    source = PACKAGE.joinpath(module).read_text(encoding="utf-8")
    ast.parse(source, filename=module, feature_version=(3, max(oldest_python()[1], AST_LOWEST_MINOR)))


@pytest.mark.parametrize("module", MODULES)
def test_future_imports_exist_on_the_oldest_python(module):
    assert future_imports_newer_than(PACKAGE.joinpath(module).read_text(encoding="utf-8"), oldest_python()) == []
