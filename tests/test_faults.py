"""Faults, end to end through `python -m smenv`: each gives one clear line and its documented exit code,
and leaves no container, intermediate image or temporary directory behind.

Real engine, real containers, no mocks. The engine is shared (other builds may run at the same time),
so leftovers are looked for only among what these tests own: each test builds on an image of its
own (a unique LABEL on top of a shared one, or a tiny imported root filesystem), and "left behind"
means an image descending from it or a container running one of them. Every subprocess gets a
private TMPDIR, which must be empty afterwards.

The tf215 image is built once per module (from the Docker cache when test_docker_build ran first)
and verification is skipped where it is not the point; the whole file takes about two minutes and
reports its elapsed time at the end (a figure to watch, not a test: timings belong in `make bench`).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO, tiny_rootfs
from smenv import pipeline
from smenv.docker.engine import THROWAWAY_LABEL
from smenv.env.resolve import ResolveOptions

pytestmark = pytest.mark.docker
MODEL = FIXTURES / "models" / "tf215-savedmodel"


@pytest.fixture(scope="module", autouse=True)
def elapsed(request):
    started = time.monotonic()
    yield
    seconds = time.monotonic() - started
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\ntests/test_faults.py: {seconds:.0f} s in all")


# -- helpers ---------------------------------------------------------------------------------------------


def smenv_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    private = tmp_path / "tmpdir"
    private.mkdir(exist_ok=True)
    return dict(os.environ, TMPDIR=str(private), NO_COLOR="1", **extra)


def run_smenv(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "smenv", *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("smenv: error:")]


def assert_interrupted(watched: "Watched", code: int, how: signal.Signals = signal.SIGINT) -> None:
    """Ctrl-C (or SIGTERM) ended smenv the documented way: exit 130 (143), one "interrupted" line, no traceback."""
    said = "smenv: interrupted" if how == signal.SIGINT else "smenv: interrupted (SIGTERM)"
    assert code == (130 if how == signal.SIGINT else 143), watched.lines[-10:]
    assert said in watched.lines, watched.lines[-10:]
    assert not any("Traceback" in line for line in watched.lines), watched.lines


def assert_no_private_temp(env: dict[str, str]) -> None:
    left = sorted(os.listdir(env["TMPDIR"]))
    assert left == [], f"left in the temporary directory: {left}"


def unique() -> str:
    return uuid.uuid4().hex[:12]


def derive(engine, image: str, tag: str) -> str:
    """A new image id on top of `image` (one LABEL), so that what is built on it or run from it is ours alone."""
    dockerfile = f"FROM {image}\nLABEL org.smenv.test.faults={tag.split(':')[-1]}\n"
    built, _ = engine.client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True, pull=False)
    return built.id


def descendants(engine, root_id: str) -> set[str]:
    """Every image (intermediate ones included) whose parent chain reaches `root_id`."""
    parent = {i["Id"]: i.get("ParentId") or "" for i in engine.client.api.images(all=True)}
    out = set()
    for image_id in parent:
        p, hops = parent[image_id], 0
        while p and hops < 500:
            if p == root_id:
                out.add(image_id)
                break
            p, hops = parent.get(p, ""), hops + 1
    return out


def containers_of(engine, image_ids: set[str]) -> list[dict]:
    return [c for c in engine.client.api.containers(all=True) if c.get("ImageID") in image_ids]


def remove_quietly(engine, *refs: str) -> None:
    for ref in refs:
        try:
            engine.client.api.remove_image(ref, force=True)
        except Exception:
            pass


def assert_nothing_built_on(engine, root_id: str) -> None:
    # Built by a Dockerfile (a parent chain), or loaded by smenv (labelled with the base it was made on).
    left = descendants(engine, root_id) | {i["Id"] for i in engine.client.api.images(filters={"label": f"org.smenv.base.id={root_id}"})}
    assert left == set(), f"images left behind on {root_id[:19]}: {sorted(i[:19] for i in left)}"
    running = containers_of(engine, left | {root_id})
    assert running == [], f"containers left behind: {[(c['Id'][:12], c['State']) for c in running]}"


class Watched:
    """`python -m smenv ...` in the background, its stderr collected line by line as it comes."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smenv", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, cwd=REPO,
            # As at a terminal: a suite started in the background (`cmd &`, as CI runners may) passes
            # SIGINT on ignored, and Python then never raises KeyboardInterrupt, so Ctrl-C could not be tested.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.stdout = ""
        self._err = threading.Thread(target=self._read, daemon=True)
        self._err.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if re.search(pattern, line):
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} within {timeout:.0f} s (exit {self.proc.poll()}): {self.lines[-10:]}")

    def interrupt(self, how: signal.Signals = signal.SIGINT, timeout: float = 120) -> int:
        self.proc.send_signal(how)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"smenv did not stop within {timeout:.0f} s of SIGINT") from None
        self._err.join(10)  # the reader thread owns stderr: it ends at EOF
        self.stdout = self.proc.stdout.read()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


# -- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf215_image(base_image_311, docker_engine, tmp_path_factory):
    """The tf215-savedmodel image (built once; cached when another module built it), under a tag and a
    one-LABEL child image of this module's own, so that every container run from it here is ours."""
    run = unique()
    tag = f"smenv-test/faults:tf215-{run}"
    built = pipeline.build(
        pipeline.ModelInput(MODEL), None, ResolveOptions(), tag=tag, verify=False, engine=docker_engine,
    )
    mine = f"smenv-test/faults:verify-{run}"
    image_id = derive(docker_engine, built.image, mine)
    yield mine, image_id
    remove_quietly(docker_engine, mine)
    try:
        docker_engine.client.api.remove_image(tag)  # just the tag, when the image has others
    except Exception:
        pass


@pytest.fixture
def own_base(docker_engine, base_image_311):
    """python:3.11-slim-bookworm under a new image id: nothing the build makes on it comes from the cache."""
    tag = f"smenv-test/faults-base:{unique()}"
    image_id = derive(docker_engine, base_image_311.tag, tag)
    yield tag, image_id
    for leftover in descendants(docker_engine, image_id):  # only when a test failed
        remove_quietly(docker_engine, leftover)
    remove_quietly(docker_engine, tag)


@pytest.fixture
def tiny_base(docker_engine, tmp_path):
    """An imported root filesystem holding one file: no shell, no Python, so the first RUN step fails."""
    tag = f"smenv-test/faults-tiny:{unique()}"
    info = docker_engine.import_rootfs(tiny_rootfs(tmp_path), tag)
    yield tag, info.id
    for leftover in descendants(docker_engine, info.id):
        remove_quietly(docker_engine, leftover)
    remove_quietly(docker_engine, tag)


# -- the engine cannot be reached ------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["build", str(MODEL)], ["verify", "smenv/anything:1"]])
def test_unreachable_engine_is_exit_6_in_one_line(tmp_path, command):
    env = smenv_env(tmp_path, DOCKER_HOST="unix:///nonexistent.sock")
    proc = run_smenv(command, env, timeout=120)
    assert proc.returncode == 6, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("smenv: error: cannot reach the Docker engine at unix:///nonexistent.sock")
    assert "DOCKER_HOST" in lines[0] and "Traceback" not in proc.stderr and proc.stdout == ""
    assert_no_private_temp(env)


# -- a build step fails ----------------------------------------------------------------------------------


def test_failed_install_names_the_reason_and_the_log_and_leaves_nothing(docker_engine, tiny_base, tmp_path):
    tag, base_id = tiny_base
    env = smenv_env(tmp_path)
    target = f"smenv-test/faults-failed:{unique()}"
    proc = run_smenv(["build", str(MODEL), "--base-image", tag, "--no-verify", "--tag", target], env)
    assert proc.returncode == 11, proc.stderr[-3000:]
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = errors[0]
    assert "installing the locked packages failed" in line and "/bin/sh" in line, line
    log = Path(re.search(r"\(full log: ([^)]+)\)", line).group(1))
    assert log.is_file() and "/bin/sh" in log.read_text()
    assert not docker_engine.image_exists(target)
    assert_nothing_built_on(docker_engine, base_id)
    assert_no_private_temp(env)


# -- verification out of memory, out of time -------------------------------------------------------------


@pytest.mark.parametrize(
    "limits, code, words",
    [(["--memory", "96m"], 29, "ran out of memory"), (["--timeout", "2"], 28, "time limit")],
    ids=["out-of-memory", "out-of-time"],
)
def test_verification_limits_give_their_exit_codes(docker_engine, tf215_image, tmp_path, limits, code, words):
    image, image_id = tf215_image
    env = smenv_env(tmp_path)
    proc = run_smenv(["verify", image, *limits], env, timeout=300)
    assert proc.returncode == code, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert words in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert containers_of(docker_engine, {image_id}) == []
    assert_no_private_temp(env)


def test_out_of_memory_in_json_says_the_container_was_killed(docker_engine, tf215_image, tmp_path):
    import json

    image, image_id = tf215_image
    env = smenv_env(tmp_path)
    proc = run_smenv(["verify", image, "--memory", "96m", "--json"], env, timeout=300)
    assert proc.returncode == 29, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert data["ok"] is False and data["oom_killed"] is True and data["exit_code"] == 29
    assert data["diagnosis"]["kind"] == "out_of_memory"
    assert containers_of(docker_engine, {image_id}) == []


# -- Ctrl-C ----------------------------------------------------------------------------------------------


def test_ctrl_c_during_the_install_cleans_up(docker_engine, own_base, tmp_path):
    tag, base_id = own_base
    env = smenv_env(tmp_path)
    target = f"smenv-test/faults-interrupted:{unique()}"
    watched = Watched(["build", str(MODEL), "--base-image", tag, "--no-verify", "--tag", target], env)
    try:
        watched.wait_for(r"installing the locked packages", timeout=300)
        # The install is running: a container of our base exists right now.
        wait_until(lambda: [c for c in containers_of(docker_engine, {base_id}) if c["State"] == "running"],
                   60, "the install container")
        code = watched.interrupt()
    finally:
        watched.kill()
    assert_interrupted(watched, code)
    assert not docker_engine.image_exists(target)
    assert_nothing_built_on(docker_engine, base_id)
    assert_no_private_temp(env)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_during_verification_cleans_up(docker_engine, tf215_image, tmp_path, how):
    image, image_id = tf215_image
    env = smenv_env(tmp_path)
    watched = Watched(["verify", image], env)
    try:
        wait_until(
            lambda: [c for c in docker_engine.client.api.containers(filters={"label": THROWAWAY_LABEL, "status": "running"})
                     if c.get("ImageID") == image_id],
            120, "the verification container",
        )
        code = watched.interrupt(how)
    finally:
        watched.kill()
    assert_interrupted(watched, code, how)
    assert containers_of(docker_engine, {image_id}) == []
    assert_no_private_temp(env)


# -- the disk fills while the build context is written ---------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount_point)], check=True, timeout=30)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], timeout=30, check=False)
        if os.path.ismount(mount_point):  # busy: detach it now, the kernel frees it when released
            subprocess.run(["umount", "-l", str(mount_point)], timeout=30, check=False)
        assert not os.path.ismount(mount_point)


def test_full_disk_while_writing_the_context_is_exit_9_and_leaves_nothing(small_disk, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    (model / "assets").mkdir(exist_ok=True)
    (model / "assets" / "big.bin").write_bytes(os.urandom(400 << 10))  # twice the disk
    env = smenv_env(tmp_path)
    out = small_disk / "ctx"
    proc = run_smenv(["generate", str(model), "-o", str(out)], env, timeout=600)
    assert proc.returncode == 9, proc.stderr[-3000:]
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert errors[0].startswith(f"smenv: error: {out}: ") and "No space left on device" in errors[0]
    assert os.listdir(small_disk) == []
    assert_no_private_temp(env)
