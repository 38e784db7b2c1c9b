"""smenv generate: golden Dockerfiles and plans for representative cases, determinism, atomicity.

The locks are real (uv against the package index, as of each model's date). To accept intended
changes: SMENV_UPDATE_GOLDEN=1 pytest tests/test_generate.py, then review the diff.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from conftest import REPO
from smenv import pipeline
from smenv.env.resolve import ResolveOptions
from smenv.errors import SmenvError
from smenv.render.context import ContextError

GOLDEN = REPO / "tests" / "golden"


@pytest.fixture(autouse=True)
def resolve_for_real(monkeypatch):
    """These tests check what uv resolves, so they never take a lock from smenv's cache."""
    monkeypatch.setenv("SMENV_NO_LOCK_CACHE", "1")
UPDATE = os.environ.get("SMENV_UPDATE_GOLDEN") == "1"
M = "tests/fixtures/models"

CASES = {
    "cpu-tf215-savedmodel": (f"{M}/tf215-savedmodel", None, {}),
    "gpu-tf215-pip-cuda": (f"{M}/tf215-savedmodel", None, {"gpu": True}),
    "gpu-tf212-cuda-image": (f"{M}/tf212-savedmodel", None, {"gpu": True}),
    "old-tf23-keras-savedmodel": ("../shared/corpus/tfrust-keras-multi-input", None, {}),
    "keras3-archive": (f"{M}/tf218-keras3.keras", None, {"python": "3.11"}),
    "conflict-with-requirements": (f"{M}/tf215-savedmodel", "tensorflow==2.13.0\nnumpy<2\n", {}),
    "companion-added": (f"{M}/tf215-text-savedmodel", "numpy<2\n", {}),
    "base-image-given": (f"{M}/tf215-savedmodel", None, {"base_image": "registry.example/ml/python:3.11"}),
}


def run_generate(case: str, tmp_path: Path, out: Path | None):
    model, requirements, opts = CASES[case]
    req_path = None
    if requirements:
        req_path = tmp_path / "requirements.txt"
        req_path.write_text(requirements)
    cwd = os.getcwd()
    os.chdir(REPO)  # relative model paths, as a user in the repository would type them
    try:
        return pipeline.generate(pipeline.ModelInput(Path(model)), req_path, ResolveOptions(**opts), out)
    finally:
        os.chdir(cwd)


def summary(result) -> str:
    lines = [f"tensorflow {result.plan.tensorflow_version} ({result.plan.tensorflow_package}) python {result.lock.python}"]
    lines += [f"{d.level:7} {d.topic}: {d.choice}" for d in result.plan.decisions]
    lines += ["packages:"] + [f"  {n}=={v}" for n, v in sorted(result.lock.packages.items())]
    return "\n".join(lines) + "\n"


def check_golden(path: Path, text: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"{path} missing: run with SMENV_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs (SMENV_UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case, tmp_path):
    result = run_generate(case, tmp_path, tmp_path / "ctx")
    check_golden(GOLDEN / case / "Dockerfile", (tmp_path / "ctx" / "Dockerfile").read_text())
    check_golden(GOLDEN / case / "plan.txt", summary(result))
    lock = (tmp_path / "ctx" / "requirements.lock").read_text()
    # Every package pinned and followed by its hashes, and nothing else installed.
    pinned = {canonicalize_name(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+) \\\n    --hash=sha256:[0-9a-f]{64}", lock, re.M)}
    assert pinned == result.lock.packages
    assert len(re.findall(r"^[^\s#]", lock, re.M)) == len(pinned)


def test_same_inputs_give_byte_identical_contexts(tmp_path):
    run_generate("companion-added", tmp_path, tmp_path / "a")
    run_generate("companion-added", tmp_path, tmp_path / "b")
    cmp = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    for sub in ("payload", "payload/model", "payload/model/variables"):
        assert not filecmp.dircmp(tmp_path / "a" / sub, tmp_path / "b" / sub).diff_files


def test_the_same_model_from_another_directory_gives_the_same_context(tmp_path, monkeypatch):
    """No host path reaches the plan (it goes into the image): a model and requirements copied elsewhere
    and given by absolute path, or by a relative path from inside the model, give the same bytes."""
    import shutil

    trees = []
    for where in ("one", "two/deeper"):
        model = tmp_path / where / "half_plus_two"
        shutil.copytree(REPO / "examples" / "half_plus_two", model)
        (model / "common.txt").write_text("numpy<2\n")
        (model / "requirements.txt").write_text("-r common.txt\n")
        trees.append(model)
    monkeypatch.chdir(tmp_path)
    pipeline.generate(pipeline.ModelInput(trees[0]), trees[0] / "requirements.txt", ResolveOptions(), tmp_path / "a")
    monkeypatch.chdir(trees[1] / "00000123")
    pipeline.generate(pipeline.ModelInput(Path("..")), Path("../requirements.txt"), ResolveOptions(), tmp_path / "b")
    for sub in ("", "payload"):
        cmp = filecmp.dircmp(tmp_path / "a" / sub, tmp_path / "b" / sub)
        assert not cmp.diff_files and not cmp.left_only and not cmp.right_only, sub
    plan = (tmp_path / "a" / "smenv.json").read_text()
    assert str(tmp_path) not in plan and '"requirements common.txt:1"' in plan


def test_context_is_self_contained(tmp_path):
    run_generate("cpu-tf215-savedmodel", tmp_path, tmp_path / "ctx")
    names = sorted(p.relative_to(tmp_path / "ctx").as_posix() for p in (tmp_path / "ctx").rglob("*") if p.is_file())
    assert {"Dockerfile", "requirements.lock", "smenv.json", "verify.py", "payload/smenv.json", "payload/model/saved_model.pb"} <= set(names)
    plan = json.loads((tmp_path / "ctx" / "smenv.json").read_text())
    assert plan["environment"]["tensorflow_version"] == "2.15.1"
    assert all(d["reason"] for d in plan["environment"]["decisions"])
    assert plan["image"]["model_path"] == "/opt/smenv/model"


def test_failure_leaves_no_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # uv's explanation is logged there, not in ~
    bad = tmp_path / "requirements.txt"
    bad.write_text("numpy==1.26.4\nnumpy==1.24.0\n")  # unsatisfiable
    out = tmp_path / "ctx"
    with pytest.raises(SmenvError) as info:
        pipeline.generate(pipeline.ModelInput(REPO / M / "tf215-savedmodel"), bad, ResolveOptions(), out)
    assert "numpy" in info.value.message
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ctx")], "a staging directory was left behind"


def test_symlink_out_of_the_model_is_refused_and_nothing_is_written(tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(REPO / M / "tf215-savedmodel", model)
    (model / "assets").mkdir(exist_ok=True)  # git keeps no empty directory
    (model / "assets" / "secret").symlink_to("/etc/hostname")
    out = tmp_path / "ctx"
    with pytest.raises(SmenvError, match="links outside the model directory"):
        pipeline.generate(pipeline.ModelInput(model), None, ResolveOptions(), out)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_an_existing_directory_that_is_not_a_context_is_not_replaced(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "data.txt").write_text("keep me")
    with pytest.raises(ContextError, match="not an smenv build context"):
        pipeline.generate(pipeline.ModelInput(REPO / M / "tf215-savedmodel"), None, ResolveOptions(), out)
    assert (out / "data.txt").read_text() == "keep me"


def test_cli_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "smenv", "generate", str(REPO / M / "tf215-text-savedmodel"), "--dry-run", "--json", "-o", str(tmp_path / "ctx")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["context"] is None and data["lock"] is None
    assert any(d["topic"] == "companion:tensorflow-text" for d in data["environment"]["decisions"])
    assert not (tmp_path / "ctx").exists()


def test_dockerfiles_directory_is_current(tmp_path):
    """dockerfiles/<example> holds the rendered context files for the repository's example models."""
    examples = sorted(p for p in (REPO / "examples").iterdir() if p.is_dir())
    assert examples
    for example in examples:
        os.chdir(REPO)
        req = example / "requirements.txt"
        result = pipeline.generate(
            pipeline.ModelInput(example.relative_to(REPO)), req.relative_to(REPO) if req.exists() else None,
            ResolveOptions(), tmp_path / example.name,
        )
        for name in ("Dockerfile", "requirements.lock", "smenv.json"):
            check_golden(REPO / "dockerfiles" / example.name / name, (result.context / name).read_text())


def make_wheel(directory: Path, name: str = "smenv_local_probe", version: str = "0.1") -> Path:
    """A minimal valid pure-Python wheel, as a user's own package would be."""
    import base64
    import hashlib
    import zipfile

    path = directory / f"{name}-{version}-py3-none-any.whl"
    files = {
        f"{name}/__init__.py": b"VALUE = 42\n",
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: smenv-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}\n" for n, d in files.items()
    ) + f"{name}-{version}.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
        zf.writestr(f"{name}-{version}.dist-info/RECORD", record)
    return path


@pytest.mark.network  # --offline downloads the TensorFlow wheels beside the local one
def test_a_local_wheel_is_locked_by_hash_and_shipped_in_the_context(tmp_path):
    wheel = make_wheel(tmp_path)
    req = tmp_path / "requirements.txt"
    req.write_text(f"./{wheel.name}\n")
    result = pipeline.generate(pipeline.ModelInput(REPO / M / "tf215-savedmodel"), req, ResolveOptions(), tmp_path / "ctx", offline=True)
    lock = (tmp_path / "ctx" / "requirements.lock").read_text()
    assert "smenv-local-probe==0.1 \\\n    --hash=sha256:" in lock.replace("smenv_local_probe", "smenv-local-probe")
    assert "file://" not in lock and str(tmp_path) not in lock  # the image never sees a host path
    assert (tmp_path / "ctx" / "wheels" / wheel.name).read_bytes() == wheel.read_bytes()
    assert result.lock.direct == ("smenv-local-probe",)
    assert "--no-index" in (tmp_path / "ctx" / "Dockerfile").read_text()


def test_locks_are_cached_by_their_inputs(tmp_path, monkeypatch):
    from smenv.env.lock import lock

    monkeypatch.delenv("SMENV_NO_LOCK_CACHE")
    facts, env_plan = pipeline.plan(pipeline.ModelInput(REPO / M / "tf215-savedmodel"), None, ResolveOptions())
    said: list[str] = []
    first, _ = lock(env_plan, said.append, cache=tmp_path)
    second, _ = lock(env_plan, said.append, cache=tmp_path)
    assert first == second and any("reused from the cache" in m for m in said)
    other = pipeline.plan(pipeline.ModelInput(REPO / M / "tf215-savedmodel"), None, ResolveOptions(as_of="2024-06-01"))[1]
    said.clear()
    lock(other, said.append, cache=tmp_path)
    assert not any("reused" in m for m in said)  # another cut-off date is another lock
