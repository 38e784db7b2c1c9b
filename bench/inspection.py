"""Section 1: `smenv inspect --json` against TensorFlow's own `saved_model_cli show --all`.

saved_model_cli runs from a virtual environment with tensorflow-cpu (made once, then reused). Models:
every SavedModel of ../shared/corpus and a large generated one (cached under ~/.cache/smenv/).
Each run is a fresh process measured by `measure.run_measured` (wall time, the child's own max RSS).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from measure import run_measured, summary

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CORPUS = REPO.parent / "shared" / "corpus"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "smenv"
TF_VENV = CACHE / "bench-tf"
TF_PIN = "tensorflow-cpu==2.15.1"
LARGE_FUNCTIONS = 3000
LARGE_CONSTANT_MB = 110
LARGE_MODEL = CACHE / "bench-models" / f"large-f{LARGE_FUNCTIONS}-c{LARGE_CONSTANT_MB}"
TF_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def ensure_tf_venv(log) -> Path:
    """A venv with tensorflow-cpu for saved_model_cli; reused when its marker names the same pin."""
    marker = TF_VENV / ".smenv-bench"
    if marker.is_file() and marker.read_text().strip() == TF_PIN:
        return TF_VENV / "bin" / "saved_model_cli"
    log(f"creating {TF_VENV} with {TF_PIN} (once)")
    if not (TF_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(TF_VENV)], check=True)
    subprocess.run([str(TF_VENV / "bin" / "pip"), "install", "--quiet", TF_PIN], check=True)
    marker.write_text(TF_PIN + "\n")
    return TF_VENV / "bin" / "saved_model_cli"


def ensure_large_model(log) -> Path:
    """The generated SavedModel, made with TensorFlow in the bench venv the first time."""
    if (LARGE_MODEL / "saved_model.pb").is_file():
        return LARGE_MODEL
    log(f"generating the large SavedModel in {LARGE_MODEL} (once, about a minute)")
    partial = LARGE_MODEL.with_name(LARGE_MODEL.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(TF_VENV / "bin" / "python"), str(BENCH / "gen_large_model.py"), str(partial),
         "--functions", str(LARGE_FUNCTIONS), "--constant-mb", str(LARGE_CONSTANT_MB)],
        check=True, env=TF_ENV,
    )
    partial.rename(LARGE_MODEL)
    return LARGE_MODEL


def savedmodel_dir(path: Path) -> Path:
    """A TF Serving base directory -> its highest numeric version (what smenv reads by default)."""
    if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
        return path
    versions = [p for p in path.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, key=lambda p: int(p.name)) if versions else path


def models() -> list[tuple[str, Path]]:
    if not CORPUS.is_dir():
        raise RuntimeError(f"{CORPUS} is missing: clone the project with shared/ beside it")
    found = [(p.name, savedmodel_dir(p)) for p in sorted(CORPUS.iterdir()) if p.is_dir()]
    return found + [("large-generated", LARGE_MODEL)]


def model_facts(path: Path) -> dict:
    pb = path / "saved_model.pb"
    return {"saved_model_pb_bytes": pb.stat().st_size if pb.is_file() else None}


def run(runs: int, smenv: str, log) -> dict:
    cli = str(ensure_tf_venv(log))
    ensure_large_model(log)
    tools = {
        "smenv": lambda d: [smenv, "inspect", "--json", str(d)],
        "saved_model_cli": lambda d: [cli, "show", "--all", "--dir", str(d)],
    }
    todo = models()
    # One untimed run of each tool first: page cache, .pyc files and shared libraries are then warm
    # for both, as they are for anyone who runs a tool twice.
    for name, make in tools.items():
        run_measured(make(todo[0][1]), env=TF_ENV)
        run_measured(make(LARGE_MODEL), env=TF_ENV)
    raw: dict[str, dict[str, list]] = {name: {tool: [] for tool in tools} for name, _ in todo}
    # The floor under each tool, whatever the model: starting smenv's CLI, importing TensorFlow.
    floors = {"smenv": [smenv, "--version"], "saved_model_cli": [str(TF_VENV / "bin" / "python"), "-c", "import tensorflow"]}
    startup: dict[str, list] = {tool: [] for tool in floors}
    for i in range(runs):
        log(f"inspection: run {i + 1}/{runs} over {len(todo)} models")
        for tool, cmd in floors.items():
            startup[tool].append(run_measured(cmd, env=TF_ENV))
        for name, path in todo:
            for tool, make in tools.items():
                raw[name][tool].append(run_measured(make(path), env=TF_ENV, timeout=900))
    results = []
    for name, path in todo:
        row = {"model": name, "path": str(path), **model_facts(path)}
        for tool, measured in raw[name].items():
            failed = [m for m in measured if m.returncode != 0]
            row[tool] = {
                "seconds": summary([m.seconds for m in measured]),
                "max_rss_bytes": summary([m.max_rss for m in measured]),
                "ok": not failed,
                "error": _last_line(failed[0].stderr) if failed else None,
            }
        s, c = row["smenv"], row["saved_model_cli"]
        row["speedup"] = c["seconds"]["median"] / s["seconds"]["median"]
        row["memory_ratio"] = s["max_rss_bytes"]["median"] / c["max_rss_bytes"]["median"]
        results.append(row)
    startup_summary = {
        tool: {"seconds": summary([m.seconds for m in measured]), "max_rss_bytes": summary([m.max_rss for m in measured])}
        for tool, measured in startup.items()
    }
    return {"tensorflow": TF_PIN, "startup": startup_summary, "large_model": {"functions": LARGE_FUNCTIONS, "constant_mb": LARGE_CONSTANT_MB},
            "models": results}


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line[:300]
    return lines[-1][:300] if lines else ""
