"""Sections 2-4 on examples/half_plus_two: builds, rebuilds, image size, verification latency.

smenv is measured through its CLI; the baseline is the plain Dockerfile most projects start with:

    FROM python:3.11-slim-bookworm
    COPY . /app
    RUN python3 -m venv /venv && /venv/bin/pip install -r /app/requirements.txt

No container here is given a route to PyPI (the product never assumes one), so the baseline's pip
gets `--no-index --find-links http://127.0.0.1:<port>/`: a wheel directory the host downloaded (pip
download of the same requirements.txt), served over HTTP on loopback for the duration of the run, which
the baseline's build steps reach with `docker build --network host` (nothing listens beyond loopback).
Its layer order stays the plain one (everything copied first, then install), and no wheel is baked
into the image, as with a networked `pip install`. smenv installs from wheels the host downloaded too,
so both read the same files from the same disk: the comparison is layer order and image shape, not
network speed.

Both build FROM `smenv-bench/base:py3.11`: python:3.11-slim-bookworm plus one LABEL (no file
changes, same size). Its distinct image id keeps the bench's build cache (the classic builder's
cache is the tree of child images) apart from everyone else's on a shared engine, so a cold build
is made cold by removing only the bench's own descendants of that image: no prune, nobody else's
image touched. All builds use the classic builder, as smenv does through the SDK.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from measure import summary, timed

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "half_plus_two"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "smenv"
BASE = "python:3.11-slim-bookworm"
BENCH_BASE = "smenv-bench/base:py3.11"
SMENV_TAG = "smenv-bench/half_plus_two:smenv"
BASELINE_TAG = "smenv-bench/half_plus_two:baseline"
PROBE_TAG = "smenv-bench/probe:latest"
LABEL = "org.smenv.bench"  # on every container the bench starts
CLASSIC = {**os.environ, "DOCKER_BUILDKIT": "0"}  # the classic builder, as smenv uses through the SDK

BASELINE_DOCKERFILE = """\
FROM {base}
COPY . /app
RUN python3 -m venv /venv && /venv/bin/pip install {pip_options} -r /app/requirements.txt
"""


def docker(*args: str, check: bool = True, env: dict | None = None, stdin: str | None = None) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, input=stdin)
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:4])}: {proc.stderr.strip()[-800:]}")
    return proc.stdout.strip()


def image_id(ref: str) -> str | None:
    out = docker("image", "inspect", "-f", "{{.Id}}", ref, check=False)
    return out or None


def image_size(ref: str) -> int:
    return int(docker("image", "inspect", "-f", "{{.Size}}", ref))


# -- the bench's own corner of the engine -------------------------------------------------------------


def parents() -> dict[str, str]:
    """{image id: parent id} for every local image, intermediate ones included."""
    ids = sorted(set(docker("images", "-a", "-q", "--no-trunc").split()))
    out = docker("image", "inspect", *ids, check=False) if ids else ""  # one removed meanwhile is left out
    return {i["Id"]: i.get("Parent") or "" for i in json.loads(out or "[]")}


def descendants(root: str, tree: dict[str, str]) -> set[str]:
    found, frontier = set(), {root}
    while frontier:
        frontier = {child for child, parent in tree.items() if parent in frontier} - found
        found |= frontier
    return found


def remove_descendants(root: str, keep: tuple[str, ...] = ()) -> int:
    """Remove every image built on `root` except the `keep` tags and what they are built on."""
    tree = parents()
    kept: set[str] = set()
    for ref in keep:
        current = image_id(ref)
        while current:
            kept.add(current)
            current = tree.get(current, "")
    removed = 0
    for _ in range(20):  # leaves first; removing a leaf also removes its untagged parents
        tree = parents()
        left = descendants(root, tree) - kept
        if not left:
            break
        for leaf in left - set(tree.values()):
            docker("rmi", "-f", leaf, check=False)
            removed += 1
    return removed


def ensure_bench_base(smenv: str, log) -> str:
    """`smenv base --python 3.11` (reuses the engine's image), then the bench's relabelled copy of it."""
    subprocess.run([smenv, "base", "--python", "3.11"], check=True, capture_output=True, text=True)
    base_id = image_id(BASE)
    current = image_id(BENCH_BASE)
    if current and docker("image", "inspect", "-f", "{{.Parent}}", current) == base_id:
        return current
    if current:  # made from an older base image: drop it and everything the bench built on it
        remove_descendants(current)
        docker("rmi", "-f", current, check=False)
    log(f"creating {BENCH_BASE} ({BASE} plus one label)")
    dockerfile = f'FROM {BASE}\nLABEL {LABEL}.base="{BASE}"\n'
    docker("build", "-q", "-t", BENCH_BASE, "-", env=CLASSIC, stdin=dockerfile)
    return image_id(BENCH_BASE)


def remove_smenv_images(bench_base: str) -> int:
    """smenv's images on the bench base: loaded images have no parent chain, so they go by tag and label
    (the image, and the dependency images whose org.smenv.base.id is the bench base)."""
    refs = [SMENV_TAG] + docker("images", "--filter", f"label=org.smenv.base.id={bench_base}", "-q", "--no-trunc",
                                check=False).split()
    removed = 0
    for ref in refs:
        if image_id(ref):
            docker("rmi", "-f", ref, check=False)
            removed += 1
    return removed


def tags_of(repository: str) -> list[str]:
    return docker("images", repository, "--format", "{{.Repository}}:{{.Tag}}", check=False).split()


def remove_bench_containers() -> None:
    ids = docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).split()
    if ids:
        docker("rm", "-f", *ids, check=False)


# -- the baseline's wheels, served to the build containers ---------------------------------------------


def baseline_wheels(requirements: Path, log) -> Path:
    """`pip download` of the example's requirements for CPython 3.11 on glibc 2.36 (bookworm), once."""
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    target = CACHE / "bench-wheels" / f"half_plus_two-{key}"
    if (target / ".complete").is_file():
        return target
    log(f"downloading the baseline's wheels into {target} (once)")
    platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)]
    platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:", "-d", str(target),
           "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "-r", str(requirements)]
    for platform in platforms:
        cmd += ["--platform", platform]
    subprocess.run(cmd, check=True, env={**os.environ, "PIP_FIND_LINKS": ""})
    (target / ".complete").write_text("")
    return target


class WheelServer:
    """`python -m http.server` on 127.0.0.1, serving the wheel directory; stopped on exit."""

    def __init__(self, directory: Path):
        self.host = "127.0.0.1"
        with socket.socket() as s:
            s.bind((self.host, 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.port), "--bind", self.host, "--directory", str(directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(50):
            try:
                urllib.request.urlopen(self.url, timeout=1).read(1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"the wheel server on {self.url} did not start")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


# -- the project both tools build ----------------------------------------------------------------------


class Project:
    """A temporary copy of examples/half_plus_two with its requirements and the baseline Dockerfile."""

    def __init__(self, pip_options: str):
        self.root = Path(tempfile.mkdtemp(prefix="smenv-bench-")) / "project"
        self.model = self.root / "half_plus_two"
        shutil.copytree(EXAMPLE, self.model)
        self.requirements = self.root / "requirements.txt"
        shutil.copy(EXAMPLE / "requirements.txt", self.requirements)
        (self.root / "Dockerfile").write_text(BASELINE_DOCKERFILE.format(base=BENCH_BASE, pip_options=pip_options))
        self.changes = 0

    def change_model(self) -> Path:
        """A model-only change: one more file under the version's assets/."""
        self.changes += 1
        changed = self.model / "00000123" / "assets" / f"bench-change-{self.changes}.txt"
        changed.write_text(f"model change {self.changes}\n")
        return changed

    def remove(self) -> None:
        shutil.rmtree(self.root.parent, ignore_errors=True)


def smenv_build(smenv: str, project: Project, tag: str = SMENV_TAG) -> tuple[float, dict]:
    seconds, proc = timed([smenv, "build", str(project.model), "-r", str(project.requirements), "--no-verify",
                           "--tag", tag, "--base-image", BENCH_BASE, "--json"])
    return seconds, json.loads(proc.stdout)


def baseline_build(project: Project) -> float:
    seconds, _ = timed(["docker", "build", "--force-rm", "--network", "host", "-t", BASELINE_TAG, str(project.root)], env=CLASSIC)
    return seconds


def step_overhead(parent: str) -> float:
    """One metadata-only build step (a LABEL) on top of `parent`, never cached: the engine's per-step cost."""
    dockerfile = f'FROM {parent}\nLABEL {LABEL}.probe="{time.time_ns()}"\n'
    seconds, _ = timed(["docker", "build", "-q", "-t", PROBE_TAG, "-"], env=CLASSIC, input=dockerfile)
    docker("rmi", PROBE_TAG, check=False)
    return seconds


# -- the sections -------------------------------------------------------------------------------------


def retried(measure, what: str, retries: list, log, tries: int = 3):
    """`measure()`, again (whole, from its own start) if a build fails; every failure is kept in `retries`.

    On a shared engine another process can break a build: e.g. a failing `smenv build` elsewhere removes
    the images that became dangling during its build, which includes this build's newest intermediate
    image ("unknown parent image ID"). A failed attempt's time is discarded, never averaged in.
    """
    for attempt in range(1, tries + 1):
        try:
            return measure()
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[-1][:300]
            retries.append({"what": what, "attempt": attempt, "error": reason})
            log(f"build: {what} failed (attempt {attempt}/{tries}): {reason}")
            if attempt == tries:
                raise


def rebuild_section(smenv: str, project: Project, bench_base: str, runs: int, cold_runs: int, log) -> dict:
    retries: list[dict] = []
    cold = {"smenv": [], "baseline": []}
    cold_ids: list[str] = []  # the image ID of each cold build: one ID when the image is reproducible

    def cold_pair() -> tuple[float, float]:
        # Cold means no bench image at all, so a retry starts from a clean slate too.
        removed = remove_descendants(bench_base) + remove_smenv_images(bench_base)
        log(f"build: cold build {i + 1}/{cold_runs} (removed {removed} bench images first)")
        smenv_seconds, built = smenv_build(smenv, project)
        cold_ids.append(built["image_id"])
        log(f"build:   smenv {smenv_seconds:.1f} s ({built['dependencies']}, {built['image_id'][:19]})")
        baseline_seconds = baseline_build(project)
        log(f"build:   baseline {baseline_seconds:.1f} s")
        return smenv_seconds, baseline_seconds

    for i in range(cold_runs):
        smenv_seconds, baseline_seconds = retried(cold_pair, f"cold build {i + 1}", retries, log)
        cold["smenv"].append(smenv_seconds)
        cold["baseline"].append(baseline_seconds)

    warm = {"smenv": [], "smenv_assembly": [], "baseline": []}

    def rebuild_pair() -> tuple[float, dict, float]:
        # A fresh change each attempt, so that a retry cannot reuse a layer of the failed attempt.
        project.change_model()
        smenv_seconds, built = smenv_build(smenv, project)
        return smenv_seconds, built, baseline_build(project)

    for i in range(runs):
        seconds, built, base_seconds = retried(rebuild_pair, f"rebuild {i + 1}", retries, log)
        warm["smenv"].append(seconds)
        warm["smenv_assembly"].append(built["build_seconds"])
        warm["baseline"].append(base_seconds)
        log(f"build: rebuild {i + 1}/{runs} after a model change: smenv {seconds:.1f} s "
            f"(assembly {built['build_seconds']:.2f} s), baseline {base_seconds:.1f} s")
    probe = {"on_base": [], "on_smenv_image": []}
    for _ in range(max(1, min(runs, 3))):
        probe["on_base"].append(retried(lambda: step_overhead(BENCH_BASE), "probe", retries, log))
        probe["on_smenv_image"].append(retried(lambda: step_overhead(SMENV_TAG), "probe", retries, log))
    return {
        "model": "examples/half_plus_two",
        "cold_image_ids": cold_ids,
        "large_model": large_model_rebuild(smenv, project, runs, log),
        "cold": {k: summary(v) for k, v in cold.items()},
        "rebuild": {k: summary(v) for k, v in warm.items()},
        "metadata_step_seconds": {k: summary(v) for k, v in probe.items()},
        "baseline_loads_model": baseline_loads_model(),
        "retries": retries,
    }


def large_model_rebuild(smenv: str, project: Project, runs: int, log, size: int = 1 << 30) -> dict:
    """Model-only rebuilds of a 1 GiB model (half_plus_two with a 1 GiB asset of random bytes), against
    copying the model's files (`cp -r` to a fresh directory on the same disk, then sync), in two cases:
    a small file changes and the large one does not (a new signature, assets, frozen weights), and the
    large file itself is rewritten (new weights)."""
    big = project.model / "00000123" / "assets" / "bench-1gib.bin"
    tag = f"{SMENV_TAG}-1gib"  # its own image: the size and verification sections measure the plain one

    def write_big() -> None:
        with open(big, "wb") as f:
            for _ in range(size >> 24):
                f.write(os.urandom(1 << 24))
        old = time.time() - 60  # past the stat cache's two-second "racily clean" window, as any saved model is
        os.utime(big, (old, old))

    def copy_seconds() -> float:
        target = Path(tempfile.mkdtemp(prefix="smenv-bench-copy-"))
        seconds, _ = timed(["sh", "-c", f'cp -r "{project.model}" "{target}/m" && sync'])
        shutil.rmtree(target, ignore_errors=True)
        return seconds

    write_big()
    try:
        smenv_build(smenv, project, tag)  # the first image of the big model; the rebuilds below change it
        small, rewritten, copy = [], [], []
        for i in range(runs):
            project.change_model()
            small.append(smenv_build(smenv, project, tag)[0])
            write_big()
            rewritten.append(smenv_build(smenv, project, tag)[0])
            copy.append(copy_seconds())
            log(f"build: 1 GiB model rebuild {i + 1}/{runs}: smenv {small[-1]:.1f} s (small change), "
                f"{rewritten[-1]:.1f} s (the large file rewritten), cp -r {copy[-1]:.1f} s")
        return {"model_bytes": sum(p.stat().st_size for p in project.model.rglob("*") if p.is_file()),
                "smenv": summary(small), "smenv_rewritten": summary(rewritten), "copy": summary(copy)}
    finally:
        big.unlink()
        docker("rmi", "-f", tag, check=False)


def baseline_loads_model() -> bool:
    """The baseline image is a working one: it loads the model and calls it (checked once, not timed)."""
    script = ("import tensorflow as tf; m = tf.saved_model.load('/app/half_plus_two/00000123'); "
              "print(m.signatures['serving_default'](x=tf.constant([1.0]))['y'].numpy())")
    proc = subprocess.run(["docker", "run", "--rm", "--network", "none", "--label", LABEL, BASELINE_TAG,
                           "/venv/bin/python", "-c", script], capture_output=True, text=True)
    return proc.returncode == 0 and "[2.5]" in proc.stdout


def du(image: str, *paths: str) -> dict[str, int]:
    out = docker("run", "--rm", "--network", "none", "--user", "0", "--label", LABEL, "--entrypoint", "du",
                 image, "-sb", *paths, check=False)
    sizes = {path: 0 for path in paths}
    for line in out.splitlines():
        size, path = line.split("\t", 1)
        sizes[path] = int(size)
    return sizes


def layer_size(image: str, created_by: str) -> int:
    """Bytes of the layer whose instruction contains `created_by` (docker history, exact sizes)."""
    out = docker("history", "--human=false", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", image)
    return sum(int(size) for size, _, by in (line.partition("\t") for line in out.splitlines()) if created_by in by)


def size_section() -> dict:
    base = image_size(BASE)
    venv = layer_size(SMENV_TAG, "into /opt/venv")  # the /opt/venv layer (pipeline.VENV_HISTORY)
    return {
        "smenv_bytes": image_size(SMENV_TAG),
        "baseline_bytes": image_size(BASELINE_TAG),
        "base_bytes": base,
        "locked_packages_bytes": venv,
        "locked_packages_du_sb": du(SMENV_TAG, "/opt/venv")["/opt/venv"],
        "floor_bytes": base + venv,
        "baseline_parts_bytes": du(BASELINE_TAG, "/venv", "/root/.cache/pip", "/app"),
    }


def verify_section(smenv: str, runs: int, log) -> dict:
    keys = ("command", "container", "container_start", "import_tensorflow", "load", "first_call", "other")
    parts = {k: [] for k in keys}
    for i in range(runs):
        # The same sandbox flags smenv uses, for a container that does nothing.
        seconds, _ = timed(["docker", "run", "--rm", "--network", "none", "--read-only", "--user", "10001:10001",
                            "--cap-drop", "ALL", "--label", LABEL, SMENV_TAG, "true"])
        parts["container_start"].append(seconds)
        seconds, proc = timed([smenv, "verify", SMENV_TAG, "--json"])
        result = json.loads(proc.stdout)
        timings = result["result"]["timings"]
        parts["command"].append(seconds)
        parts["container"].append(result["container_seconds"])
        parts["import_tensorflow"].append(timings["import_tensorflow_s"])
        parts["load"].append(timings["load_s"])
        parts["first_call"].append(timings.get("first_call_s"))
        # What the container spent outside the three timed phases: creation and start, Python's own
        # start, the other signatures' calls, exit.
        parts["other"].append(result["container_seconds"] - timings["import_tensorflow_s"] - timings["load_s"]
                              - (timings.get("first_call_s") or 0))
        log(f"verify: run {i + 1}/{runs}: {seconds:.1f} s")
    return {k: summary(v) for k, v in parts.items()}
