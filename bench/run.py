"""`make bench`: smenv against plain baselines measured in the same run.

    .venv/bin/python bench/run.py [--runs N] [--cold-runs N] [--sections 1,2,3,4,5]

1. inspection: `smenv inspect --json` vs `saved_model_cli show --all` (corpus + a large generated model)
2. build: cold build and rebuild after a model-only change, smenv vs a plain Dockerfile
3. image size: smenv image vs the baseline image vs the floor (base image + locked packages)
4. verification latency: container start, TensorFlow import, model load, first call
5. serving: the image as deployed under wrk at 1 and 16 clients, against the model's own call; time to ready

Writes bench/results/latest.json and latest.md, prints the table and, after a run of every section,
puts the summary table into the README (between its `bench:` markers). Removes the containers and the
baseline images it made; keeps smenv's image (smenv-bench/half_plus_two:smenv) and the base image.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import images
import inspection
import report
import serving
from measure import environment_facts

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
SMENV = REPO / ".venv" / "bin" / "smenv"


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark smenv against plain baselines.")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument("--cold-runs", type=int, default=None, help="cold builds of each image (default: --runs)")
    parser.add_argument("--sections", default="1,2,3,4,5", help="which sections to run (default all)")
    parser.add_argument("--serve-seconds", type=int, default=60, help="each load run of section 5 (default 60)")
    parser.add_argument("--smenv", default=str(SMENV), help="the smenv executable")
    args = parser.parse_args()
    args.cold_runs = args.runs if args.cold_runs is None else args.cold_runs
    sections = {int(s) for s in args.sections.split(",")}
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s] {message}", file=sys.stderr, flush=True)

    version = subprocess.run([args.smenv, "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]
    results: dict = {"schema": 1, "smenv_version": version, "runs": args.runs, "cold_runs": args.cold_runs,
                     "machine": {**environment_facts(), **docker_facts()}, "notes": []}
    if 1 in sections:
        results["inspection"] = inspection.run(args.runs, args.smenv, log)
    if sections & {2, 3, 4, 5}:
        docker_sections(args, sections, results, log)
    results["notes"] = notes(results)
    results["total_seconds"] = round(time.monotonic() - started, 1)
    results["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    text = report.markdown(results)
    (RESULTS / "latest.md").write_text(text + "\n")
    print(text)
    print(f"\n(total {results['total_seconds'] / 60:.1f} min; written to {RESULTS}/latest.json and latest.md)")
    if sections == {1, 2, 3, 4, 5}:  # a partial run would put a partial table in the README
        update_readme(text)
    return 0


README_START = "<!-- bench: start (make bench writes this table; see bench/results/latest.md) -->"
README_END = "<!-- bench: end -->"


def update_readme(report_text: str, readme: Path = REPO / "README.md") -> None:
    """Replace the README's benchmark table with this run's header line and summary table."""
    summary = report_text.split("\nNotes:", 1)[0].strip()
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        print(f"README.md has no {README_START!r} ... {README_END!r} markers: not updated", file=sys.stderr)
        return
    readme.write_text(text[: start + len(README_START)] + "\n" + summary + "\n" + text[end:])


def docker_sections(args, sections: set[int], results: dict, log) -> None:
    bench_base = images.ensure_bench_base(args.smenv, log)
    server = images.WheelServer(images.baseline_wheels(images.EXAMPLE / "requirements.txt", log))
    pip_options = f"--no-index --find-links {server.url}"
    project = images.Project(pip_options)
    results["baseline_dockerfile"] = (project.root / "Dockerfile").read_text()
    try:
        if 2 in sections or not (images.image_id(images.SMENV_TAG) and images.image_id(images.BASELINE_TAG)):
            results["build"] = images.rebuild_section(args.smenv, project, bench_base, args.runs, args.cold_runs, log)
        if 3 in sections:
            results["size"] = images.size_section()
        if 4 in sections:
            results["verify"] = images.verify_section(args.smenv, args.runs, log)
        if 5 in sections:
            results["serve"] = serving.run(images.SMENV_TAG, serving.model_name(images.SMENV_TAG), args.serve_seconds, log)
    finally:
        log("cleaning up: bench containers, baseline images, superseded bench images")
        server.stop()
        project.remove()
        images.remove_bench_containers()
        keep = (images.SMENV_TAG, *images.tags_of("smenv-deps"))
        images.remove_descendants(bench_base, keep=keep)


def docker_facts() -> dict:
    out = subprocess.run(["docker", "info", "-f", "{{.ServerVersion}} {{.Driver}}"], capture_output=True, text=True)
    server, _, driver = out.stdout.strip().partition(" ")
    return {"docker_server": server or None, "storage_driver": driver or None}


def notes(r: dict) -> list[str]:
    out = []
    if "inspection" in r:
        failed = [m["model"] for m in r["inspection"]["models"] if not m["saved_model_cli"]["ok"]]
        out.append(
            "Inspection: each figure is one fresh process; peak memory is that process's own max RSS, read "
            f"with wait4() by {r['machine']['rss_wrapper']}. One untimed warm-up run of each tool first. "
            "TF Serving base directories are given to both tools as their highest version directory."
        )
        if failed:
            out.append(f"saved_model_cli exited with an error on {', '.join(failed)} (ops it does not have "
                       "registered); their times, up to the failure, are included.")
    if "build" in r:
        how = ("no container is given a route to PyPI, so the baseline's pip installs with `--no-index "
               "--find-links` from wheels the host downloaded (`pip download -r requirements.txt`), served over HTTP "
               "on 127.0.0.1 for the run (`docker build --network host`), as smenv installs from wheels the host "
               "downloaded: plain layer order (copy everything, then install) and no wheel baked into the image")
        out.append(f"Build baseline: `FROM python:3.11-slim-bookworm`, `COPY . /app`, `RUN python3 -m venv /venv && "
                   f"/venv/bin/pip install -r /app/requirements.txt`; {how}. It installs what requirements.txt "
                   "names (`tensorflow==2.14.0`, the full wheel); smenv installs `tensorflow-cpu` 2.14.0. "
                   f"The baseline image loads and calls the model: {'yes' if r['build']['baseline_loads_model'] else 'NO'}.")
        out.append("Both images build FROM `smenv-bench/base:py3.11` (python:3.11-slim-bookworm plus one label, "
                   "same size) with the classic builder; a cold build follows the removal of every image the bench "
                   "built on it (and smenv's own images on it, by tag and label), and nothing else. Host-side caches "
                   "(smenv's wheel cache and lock cache, the baseline's wheel directory) stay warm for both. smenv's "
                   "whole command includes reading the model, resolving, installing the lock in a throw-away "
                   "container (cold builds only) and loading the layers the engine lacks; no step is committed.")
    if r.get("build", {}).get("retries"):
        errors = sorted({retry["error"] for retry in r["build"]["retries"]})
        out.append(f"{len(r['build']['retries'])} build attempt(s) failed and were redone from their start (failed "
                   f"attempts are not counted; details in latest.json): {'; '.join(errors)}")
    if "size" in r:
        parts = r["size"]["baseline_parts_bytes"]
        out.append("Baseline image contents: " + ", ".join(f"`{k}` {v / (1 << 20):,.0f} MiB" for k, v in parts.items())
                   + ". Floor: base image plus the smenv image's `/opt/venv` layer "
                   f"(`du -sb /opt/venv` inside it: {r['size']['locked_packages_du_sb'] / (1 << 20):,.0f} MiB, directories included).")
    out.append("Other jobs may share this machine and Docker engine; the load average at the start is in the header.")
    return out


if __name__ == "__main__":
    sys.exit(main())
