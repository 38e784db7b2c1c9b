"""Measuring one child process (wall time, peak memory) and summarising repeated runs."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# A wrapper that forks, execs the command and reads wait4()'s rusage for that child alone. Needed
# because Linux carries ru_maxrss across execve: a child forked straight from this (large) Python
# process would start with our own peak. GNU time does exactly this from a ~2 MB process; the
# Python fallback below does the same from a ~10 MB one (its floor shows in small results).
GNU_TIME = "/usr/bin/time"
PY_WAIT4 = (
    "import os,sys\n"
    "pid=os.fork()\n"
    "if pid==0:\n"
    "    os.execvp(sys.argv[2],sys.argv[2:])\n"
    "_,status,ru=os.wait4(pid,0)\n"
    "open(sys.argv[1],'w').write('%d\\n'%ru.ru_maxrss)\n"
    "sys.exit(os.waitstatus_to_exitcode(status) & 255)\n"
)


@dataclass(frozen=True)
class Run:
    seconds: float
    max_rss: int  # bytes, of the measured process alone
    returncode: int
    stdout: str
    stderr: str


def wrapper_name() -> str:
    return "GNU time (wait4)" if Path(GNU_TIME).is_file() else "python fork+exec+wait4"


def run_measured(cmd: list[str], env: dict | None = None, timeout: float | None = None) -> Run:
    """Run `cmd` as a fresh process; its wall time and its own peak resident set size."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as out:
        if Path(GNU_TIME).is_file():
            wrapped = [GNU_TIME, "-f", "%M", "-o", out.name, *cmd]  # %M: max RSS in KiB
        else:
            wrapped = [sys.executable, "-c", PY_WAIT4, out.name, *cmd]
        started = time.perf_counter()
        proc = subprocess.run(wrapped, capture_output=True, text=True, env=env, timeout=timeout)
        seconds = time.perf_counter() - started
        lines = [line for line in Path(out.name).read_text().splitlines() if line.strip()]
    # GNU time writes "Command exited with non-zero status N" before the figure.
    max_rss_kib = int(lines[-1]) if lines and lines[-1].strip().isdigit() else 0
    return Run(seconds, max_rss_kib * 1024, proc.returncode, proc.stdout, proc.stderr)


def timed(cmd: list[str], env: dict | None = None, check: bool = True, **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    """Wall time of a command (no memory figure); raises with its stderr tail if `check` and it fails."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, **kwargs)
    seconds = time.perf_counter() - started
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exited {proc.returncode}:\n{tail}")
    return seconds, proc


def summary(values: list[float]) -> dict:
    """Median and spread of repeated measurements (all runs kept)."""
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0, "runs": []}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "runs": [round(v, 4) for v in values],
    }


def environment_facts() -> dict:
    """What the figures depend on: cores, memory, load (other jobs share this machine)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(total / (1 << 30), 1),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "rss_wrapper": wrapper_name(),
        "docker": shutil.which("docker") is not None,
    }
