"""What smenv/env/lock.py relies on in uv, checked against the uv that is installed.

lock.py passes uv flags that exist only in some releases and reads uv's output and messages: the
requirements format it writes, "no usable wheels" (which lifts a cut-off for that package) and "missing
an upload date" (an index without PEP 700 upload times). A uv release that changes any of them fails
here by name, instead of surfacing as "no set of packages satisfies the environment" for users.
"""

from __future__ import annotations

import json
import re
import tomllib
from types import SimpleNamespace

import pytest
from packaging.requirements import Requirement

from conftest import REPO
from frozen_index import FrozenIndex, FrozenIndexServer
from smenv.env import lock as lock_module
from smenv.env.lock import UV_SUPPORTED, LockError, _compile, _NoUploadTimes, uv_binary
from smenv.env.requirements import IndexOptions

AS_OF = "2024-06-01T00:00:00Z"


def plan_for(index_url: str | None = None, exempt: tuple[str, ...] = ()) -> SimpleNamespace:
    """The fields of an EnvironmentPlan that _compile reads."""
    return SimpleNamespace(as_of=AS_OF, cutoff_exempt=exempt, index=IndexOptions(index_url=index_url))


def test_pyproject_bounds_uv_as_lock_py_does():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (uv,) = [Requirement(d) for d in project["dependencies"] if Requirement(d).name == "uv"]
    assert uv.specifier == UV_SUPPORTED
    assert UV_SUPPORTED.contains(lock_module._uv_version())


def test_a_uv_outside_the_range_is_refused_with_what_to_install(monkeypatch):
    monkeypatch.setattr(lock_module, "_uv_version", lambda: "0.9.9")
    with pytest.raises(LockError, match=r"uv 0\.9\.9 is installed, but smenv works with uv .*pip install 'uv"):
        uv_binary()


def test_uv_writes_the_pins_and_hashes_lock_parses(tmp_path):
    the_lock = _compile(plan_for(), "3.11", tmp_path, "lock", ["absl-py==2.1.0", "six"], [], ())
    assert the_lock.packages == {"absl-py": "2.1.0", "six": "1.16.0"}
    assert all(len(the_lock.hashes[name]) >= 1 for name in the_lock.packages)
    # Every line is one of the forms Lock.from_text reads: a pin, a hash continuation, a `# via` note.
    for line in the_lock.text.splitlines():
        assert re.fullmatch(
            r"[a-z0-9][a-z0-9._-]*==\S+ \\|    --hash=sha256:[0-9a-f]{64}( \\)?|    # via.*|        #? ?\S.*|", line
        ), line


def test_uv_names_a_package_whose_only_files_before_the_cut_off_are_sources(tmp_path):
    # termcolor 1.1.0 was only ever an sdist: lock.py lifts the cut-off for the packages uv names here.
    with pytest.raises(LockError) as info:
        _compile(plan_for(), "3.11", tmp_path, "lock", ["termcolor==1.1.0"], [], ())
    assert info.value.wheel_less == ("termcolor",)


def test_uv_warns_about_an_index_without_upload_times(tmp_path):
    """pypiserver, devpi and plain link pages record no upload times: lock.py must notice, not fail blind."""
    data = tmp_path / "index"
    wheel = "smenv_probe-1.0-py3-none-any.whl"
    page = {
        "meta": {"api-version": "1.1"}, "name": "smenv-probe", "versions": ["1.0"],
        "files": [{"filename": wheel, "hashes": {"sha256": "0" * 64}, "requires-python": None, "yanked": False,
                   "source": "http://127.0.0.1:9/unused"}],
    }
    (data / "simple").mkdir(parents=True)
    (data / "simple" / "smenv-probe.json").write_text(json.dumps(page))
    (data / "metadata").mkdir()
    (data / "metadata" / f"{wheel}.metadata").write_text("Metadata-Version: 2.1\nName: smenv-probe\nVersion: 1.0\n")
    with FrozenIndexServer(FrozenIndex(data)) as server:
        with pytest.raises(_NoUploadTimes):
            _compile(plan_for(server.url), "3.11", tmp_path, "lock", ["smenv-probe"], [], ())
        # Without a cut-off the same index locks: the fallback lock.py takes.
        unlimited = _compile(plan_for(server.url), "3.11", tmp_path, "again", ["smenv-probe"], [], (), cutoff=False)
    assert unlimited.packages == {"smenv-probe": "1.0"}


def test_an_older_python_is_locked_without_fetching_an_interpreter(tmp_path, monkeypatch):
    """For a source-only package uv looks for the target Python (3.8 here) and, left to itself, tries to
    download one from GitHub: ~10 s of retries and a DNS error wall in the user's message. smenv tells it
    never to, so the message is uv's own answer (the host's Python reads what it needs)."""
    monkeypatch.delenv("UV_PYTHON_DOWNLOADS", raising=False)
    with pytest.raises(LockError) as info:
        _compile(plan_for(), "3.8", tmp_path, "lock", ["termcolor==1.1.0"], [], ())
    assert info.value.wheel_less == ("termcolor",)
    assert "download" not in info.value.message.lower() and "github" not in info.value.message.lower()
    the_lock = _compile(plan_for(), "3.8", tmp_path, "again", ["six==1.16.0"], [], ())
    assert the_lock.packages == {"six": "1.16.0"} and the_lock.python == "3.8"


@pytest.mark.parametrize(
    "wanted, needs",
    [
        ("numpy>=2", ("tensorflow==2.15.1", "numpy>=1.23.5,<2.0.0")),
        # uv lists a range with holes as "depends on one of:" and one range per line.
        ("protobuf>=5", ("tensorflow==2.15.1", "protobuf>=3.20.3,<5.0.0.dev0")),
    ],
)
def test_uv_explains_a_conflict_in_the_phrases_conflict_py_reads(tmp_path, wanted, needs):
    """smenv/env/conflict.py turns uv's derivation chain into one sentence by reading "A depends on B"."""
    from smenv.env.conflict import _depends

    plan = plan_for(exempt=("tensorflow",))
    with pytest.raises(LockError) as info:
        _compile(plan, "3.11", tmp_path, "lock", ["tensorflow==2.15.1", wanted], [], ())
    assert needs in _depends(info.value.details)
    assert f"you require {wanted}" in info.value.details
