"""--model-builder: parsed and found in the --code sources on the host, without running them."""

from __future__ import annotations

from pathlib import Path

import pytest

from smenv.errors import UsageError
from smenv.model.builder import ModelBuilder, check, parse

USERCODE = Path(__file__).parent / "fixtures" / "usercode"


@pytest.mark.parametrize("spec", ["my_model", "my_model:", ":build", "my-model:build", "my_model:build()", "a..b:f", "m:f:g"])
def test_a_malformed_spec_is_a_usage_error(spec):
    with pytest.raises(UsageError, match="MODULE:FUNCTION") as refused:
        parse(spec)
    assert refused.value.exit_code == 2


def test_a_dotted_module_is_accepted():
    assert parse(" pkg.models:build_model ") == ModelBuilder("pkg.models", "build_model")
    assert str(parse("m:f")) == "m:f"


def test_the_shipped_fixture_builder_is_found():
    source = USERCODE / "smenv_fixture_builders.py"
    assert check(parse("smenv_fixture_builders:tiny_functional"), (source,)) == source


@pytest.mark.parametrize("body, name", [
    ("def build():\n    return None\n", "build"),
    ("async def build():\n    pass\n", "build"),
    ("class Build:\n    pass\n", "Build"),
    ("def _make():\n    pass\nbuild = _make\n", "build"),
    ("build: object = None\n", "build"),
    ("from elsewhere import make as build\n", "build"),
    ("try:\n    import x\nexcept ImportError:\n    x = None\nelse:\n    pass\nif x:\n    def build():\n        pass\n", "build"),
    ("with open('f') as f:\n    build = f\n", "build"),
    # Names that cannot be known without running the module are taken on trust.
    ("from .models import *\n", "build"),
    ("def __getattr__(name):\n    return None\n", "build"),
])
def test_any_top_level_binding_counts(tmp_path, body, name):
    source = tmp_path / "m.py"
    source.write_text(body)
    assert check(ModelBuilder("m", name), (source,)) == source


def test_a_function_defined_only_inside_another_is_not_found(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def outer():\n    def build():\n        pass\n")
    with pytest.raises(UsageError, match="defines no top-level build") as refused:
        check(ModelBuilder("m", "build"), (source,))
    assert refused.value.path == str(source)


def test_packages_and_their_modules_are_found(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("def top():\n    pass\n")
    (pkg / "models.py").write_text("def build():\n    pass\n")
    (pkg / "sub" / "__init__.py").write_text("def deep():\n    pass\n")
    assert check(ModelBuilder("pkg", "top"), (pkg,)) == pkg / "__init__.py"
    assert check(ModelBuilder("pkg.models", "build"), (pkg,)) == pkg / "models.py"
    assert check(ModelBuilder("pkg.sub", "deep"), (pkg,)) == pkg / "sub" / "__init__.py"


def test_a_module_not_among_the_code_paths_names_them(tmp_path):
    other = tmp_path / "other.py"
    other.write_text("")
    with pytest.raises(UsageError, match=r"module my_model is not in the --code paths given \(.*other\.py\)"):
        check(ModelBuilder("my_model", "build"), (other,))
    with pytest.raises(UsageError, match=r"given \(none\); pass --code with its file \(my_model\.py\)"):
        check(ModelBuilder("my_model", "build"), ())
    # A file module has no submodules.
    with pytest.raises(UsageError, match="not in the --code paths"):
        check(ModelBuilder("other.sub", "build"), (other,))


@pytest.mark.parametrize("content", [b"def build(:\n", b"x = 1\x00\n", b"\xff\xfe not utf-8 ( \n"])
def test_a_module_that_does_not_parse_is_named(tmp_path, content):
    source = tmp_path / "m.py"
    source.write_bytes(content)
    with pytest.raises(UsageError, match="cannot parse the module") as refused:
        check(ModelBuilder("m", "build"), (source,))
    assert refused.value.path == str(source)


@pytest.mark.parametrize("module", ["verify", "serve", "serve.api"])
def test_module_names_the_images_runtime_takes_are_refused(tmp_path, module):
    (tmp_path / "verify.py").write_text("def build():\n    pass\n")
    with pytest.raises(UsageError, match="would be imported instead of yours"):
        check(ModelBuilder(module, "build"), (tmp_path / "verify.py",))


def test_a_module_name_too_long_for_the_file_system_is_a_usage_error(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    with pytest.raises(UsageError, match="cannot look for module"):
        check(ModelBuilder("pkg." + "a" * 300, "build"), (pkg,))
