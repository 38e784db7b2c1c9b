"""Lock an EnvironmentPlan: every transitive package pinned and hashed, for the target Python and Linux.

uv resolves for another Python and platform without that interpreter (`--python-version`,
`--python-platform`), honours a cut-off date (`--exclude-newer`, with per-package exemptions) and
hashes every file (`--generate-hashes`).

CPU locks take two passes. Companion packages depend on `tensorflow`, but the CPU image installs
`tensorflow-cpu` (the same module, less than half the size). Pass one resolves with `tensorflow` itself,
so every package's TensorFlow requirement is checked; pass two swaps in `tensorflow-cpu`, drops
`tensorflow`, and is constrained to pass one's versions, so nothing the check relied on can move.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from smenv.env.plan import EnvironmentPlan
from smenv.errors import SmenvError

# glibc of the Debian releases smenv's base images use is 2.31 (bullseye) or newer; manylinux_2_28
# wheels run on all of them, and TensorFlow's own wheels are manylinux_2_17 / 2_27.
PLATFORM = "x86_64-manylinux_2_28"
# Exempt packages are pinned on purpose; their cut-off is lifted by giving them a far date.
NO_CUTOFF = "2999-12-31T00:00:00Z"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


class LockError(SmenvError):
    exit_code = 8
    kind = "lock_conflict"


@dataclass(frozen=True)
class Lock:
    text: str  # the requirements.lock file, header included
    python: str
    packages: dict[str, str]  # canonical name -> version
    digest: str  # sha256 of `text`

    @classmethod
    def from_text(cls, text: str, python: str) -> "Lock":
        packages = {}
        for line in text.splitlines():
            m = _PIN.match(line)
            if m:
                packages[m.group(1).lower().replace("_", "-").replace(".", "-")] = m.group(3)
        return cls(text, python, packages, "sha256:" + hashlib.sha256(text.encode()).hexdigest())


def uv_binary() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


def lock(plan: EnvironmentPlan, progress=lambda msg: None) -> tuple[Lock, list[str]]:
    """Lock for the first Python candidate that resolves; returns the lock and notes on skipped Pythons."""
    notes: list[str] = []
    last_error: LockError | None = None
    for python in plan.python_candidates:
        progress(f"locking for Python {python} as of {plan.as_of[:10]}")
        try:
            return _lock_for(plan, python), notes
        except LockError as exc:
            last_error = exc
            if plan.python_forced or len(plan.python_candidates) == 1:
                raise
            notes.append(f"Python {python} did not resolve: {exc.message.splitlines()[0]}")
    assert last_error is not None
    raise last_error


def _lock_for(plan: EnvironmentPlan, python: str) -> Lock:
    with tempfile.TemporaryDirectory(prefix="smenv-lock-") as tmp:
        work = Path(tmp)
        requirements = [p.requirement for p in plan.packages]
        if plan.excludes:  # the CPU swap: check with `tensorflow` first
            check = [_full_tensorflow(r, plan) for r in requirements]
            checked = _compile(plan, python, work, "check", check, list(plan.constraints), excludes=())
            pins = [f"{name}=={version}" for name, version in sorted(checked.packages.items()) if name not in plan.excludes]
            body = _compile(plan, python, work, "lock", requirements, list(plan.constraints) + pins, plan.excludes)
        else:
            body = _compile(plan, python, work, "lock", requirements, list(plan.constraints), ())
    header = (
        "# requirements.lock written by smenv: every package pinned and hashed.\n"
        f"# TensorFlow {plan.tensorflow_version} ({plan.tensorflow_package}), Python {python}, {PLATFORM}, "
        f"packages as of {plan.as_of}.\n"
        "# Install with: pip install --require-hashes --no-deps -r requirements.lock\n"
    )
    return Lock.from_text(header + body.text, python)


def _full_tensorflow(requirement: str, plan: EnvironmentPlan) -> str:
    prefix = f"{plan.tensorflow_package}=="
    return "tensorflow==" + requirement[len(prefix):] if requirement.startswith(prefix) else requirement


def _compile(plan, python, work: Path, name: str, requirements, constraints, excludes) -> Lock:
    # Relative names, run from `work`: uv's "# via" annotations quote them, and the lock must not
    # carry a temporary path (the same inputs must give the same bytes).
    work = work / name
    work.mkdir()
    (work / "requirements.in").write_text("\n".join(requirements) + "\n")
    out = work / "requirements.txt"
    cmd = [
        uv_binary(), "pip", "compile", "requirements.in",
        "--python-version", python,
        "--python-platform", PLATFORM,
        "--generate-hashes",
        "--no-header",
        "--exclude-newer", plan.as_of,
        "--output-file", "requirements.txt",
        "--quiet",
    ]
    for package in plan.cutoff_exempt:
        cmd += ["--exclude-newer-package", f"{package}={NO_CUTOFF}"]
    if constraints:
        (work / "constraints.txt").write_text("\n".join(constraints) + "\n")
        cmd += ["--constraints", "constraints.txt"]
    if excludes:
        (work / "excludes.txt").write_text("\n".join(excludes) + "\n")
        cmd += ["--excludes", "excludes.txt"]
    index = plan.index
    if index.no_index:
        cmd.append("--no-index")
    if index.index_url:
        cmd += ["--index-url", index.index_url]
    for url in index.extra_index_urls:
        cmd += ["--extra-index-url", url]
    for link in index.find_links:
        cmd += ["--find-links", link]
    env = dict(os.environ, NO_COLOR="1", UV_NO_PROGRESS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=work)
    if proc.returncode != 0:
        raise LockError(_explain(proc.stderr, python))
    return Lock.from_text(out.read_text(), python)


def _explain(stderr: str, python: str) -> str:
    """uv's resolver explanation, trimmed to the lines that name the packages in conflict."""
    lines = [_ANSI.sub("", l).strip(" ╰─▶×│") .strip() for l in stderr.splitlines()]
    lines = [l for l in lines if l and not l.startswith(("hint:", "help:"))]
    text = " ".join(lines[:8]) or "uv failed without a message"
    return f"no set of packages satisfies the environment for Python {python}: {text}"
