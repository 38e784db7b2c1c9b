#!/usr/bin/env python3
"""`make fuzz`: every fuzz target in turn, for a time budget each, then a summary per target.

    .venv/bin/python tools/fuzz.py [TARGET ...] [--minutes N] [--engine auto|both|atheris|hypothesis]
    .venv/bin/python tools/fuzz.py --list
    .venv/bin/python tools/fuzz.py --compare SECONDS [TARGET ...]

The targets are in tests/fuzz_targets.py (the same ones tests/test_fuzz.py runs briefly in CI). Each
runs in its own process, one at a time, for `--minutes` (default: $FUZZ_MINUTES, else 10):
- atheris (coverage-guided, libFuzzer's mutations of bytes; starts from real files and examples of the
  target's hypothesis strategy), or
- hypothesis (the target's structured generator, in fresh random batches until the time is up), or
- both, half the time each;
`auto` takes the engine the target names: atheris or hypothesis where one covered clearly more of smenv
in equal time, both where neither did (`--compare` measures it: each engine SECONDS, smenv's branches seen).

Crashes (anything but success or a one-line SmenvError, a hang, a write outside the input's directory)
do not stop the run. Each distinct crash (exception type and the smenv line it came from) is saved once
as tests/fuzz_crashes/<target>/<id>.bin, which tests/test_fuzz.py replays: a regression test as soon as
it exists, failing until the bug is fixed. Tracebacks and libFuzzer's log go to build/fuzz/<target>/.
A child that dies (a segfault in a C extension, libFuzzer's memory limit) or is stuck in C code (killed
after STUCK_SECONDS) is restarted for the rest of its budget, and the input it died on is saved the same
way. Exit status 1 when any target crashed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
BUILD = REPO / "build" / "fuzz"
SMENV_DIR = str(REPO / "smenv") + os.sep
FLUSH_SECONDS = 5.0  # the child writes its figures this often, so a child that dies loses little
# A child whose figures are this old is stuck in one input inside C code (HDF5, zlib), where the 20 s alarm
# of tests/fuzz_targets.py cannot interrupt it (libFuzzer's own -timeout shares that SIGALRM, so it is off):
# the parent kills it and saves the input as a hang.
STUCK_SECONDS = 90.0
HYPOTHESIS_BATCH = 200
SEED_EXAMPLES = 200  # examples of the hypothesis strategy added to atheris's starting corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help="targets to run (default: all, in order)")
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("FUZZ_MINUTES", "10")),
                        help="time budget per target (default: $FUZZ_MINUTES, else 10)")
    parser.add_argument("--engine", choices=["auto", "both", "atheris", "hypothesis"], default="auto")
    parser.add_argument("--crash-dir", type=Path, default=None, help="where crashing inputs go (default: tests/fuzz_crashes)")
    parser.add_argument("--list", action="store_true", help="list the targets and their engines")
    parser.add_argument("--compare", type=float, metavar="SECONDS", help="run both engines SECONDS each and compare coverage")
    parser.add_argument("--replay", type=Path, metavar="DIR", help="run the target on every file in DIR (and further DIRs) under the tracer; print smenv's branches seen")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--stats", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.child:
        return _child(args.child, args.engine, args.seconds, args.stats, args.crash_dir, args.trace)
    if args.replay:
        print(_replay(args.targets[0], [args.replay.resolve(), *(Path(d).resolve() for d in rest)]))
        return 0

    from fuzz_targets import CRASHES, TARGETS

    if args.list:
        for t in TARGETS.values():
            print(f"{t.name:20} {t.engine:11} {t.what}")
        return 0
    unknown = [n for n in args.targets if n not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; --list shows them")
    names = args.targets or list(TARGETS)
    crash_dir = args.crash_dir or CRASHES
    if args.compare:
        return _compare(names, args.compare, crash_dir)
    if args.engine != "hypothesis" and not _has_atheris():
        print("fuzz: atheris is not installed (`.venv/bin/python -m pip install atheris`): every target uses hypothesis")
    rows = []
    started = time.monotonic()
    for i, name in enumerate(names, 1):
        engine = _engine(TARGETS[name].engine if args.engine == "auto" else args.engine)
        print(f"fuzz: [{i}/{len(names)}] {name} with {engine} for {args.minutes:g} min", flush=True)
        if engine == "both":
            halves = [run_target(name, e, args.minutes * 30, crash_dir) for e in ("hypothesis", "atheris")]
            stats = _merged(name, halves)
        else:
            stats = run_target(name, engine, args.minutes * 60, crash_dir)
        rows.append(stats)
        print("fuzz:   " + _row(stats), flush=True)
        for sig, c in stats["crashes"].items():
            print(f"fuzz:   crash x{c['count']}: {sig}\n          input: {c['input']}\n          traceback: {c.get('traceback')}", flush=True)
    _summary(rows, time.monotonic() - started)
    return 1 if any(r["crashes"] for r in rows) else 0


def _has_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def _engine(wanted: str) -> str:
    return wanted if wanted == "hypothesis" or _has_atheris() else "hypothesis"


def _merged(name: str, runs: list[dict]) -> dict:
    out = {"target": name, "engine": "both", "seconds": 0.0, "inputs": 0, "crashes": {}, "restarts": 0,
           "runs": {r["engine"]: {k: r[k] for k in ("seconds", "inputs", "restarts")} for r in runs}}
    for r in runs:
        out["seconds"] += r["seconds"]
        out["inputs"] += r["inputs"]
        out["restarts"] += r["restarts"]
        for sig, c in r["crashes"].items():
            mine = out["crashes"].setdefault(sig, {**c, "count": 0, "engines": []})
            mine["count"] += c["count"]
            mine["engines"].append(r["engine"])
    return out


def _row(s: dict) -> str:
    crashes = sum(c["count"] for c in s["crashes"].values())
    restarts = f", {s['restarts']} restarts" if s["restarts"] else ""
    split = "".join(f"; {e} {r['inputs']:,} in {r['seconds'] / 60:.1f} min" for e, r in s.get("runs", {}).items())
    return (f"{s['target']:18} {s['engine']:10} {s['seconds'] / 60:6.1f} min {s['inputs']:>10,} inputs "
            f"{len(s['crashes']):>3} distinct crashes ({crashes} inputs){restarts}{split}")


def _summary(rows: list[dict], seconds: float) -> None:
    print(f"\nfuzz: summary ({seconds / 60:.1f} min in all)")
    print(f"{'target':18} {'engine':10} {'minutes':>7} {'inputs':>12} {'crashes':>8}  saved")
    for s in rows:
        saved = ", ".join(sorted({c["input"] or "(no input: see " + c["traceback"] + ")" for c in s["crashes"].values()})) or "-"
        print(f"{s['target']:18} {s['engine']:10} {s['seconds'] / 60:7.1f} {s['inputs']:>12,} {len(s['crashes']):>8}  {saved}")
    (BUILD / "summary.json").write_text(json.dumps(rows, indent=1))
    print(f"(figures also in {BUILD.relative_to(REPO) / 'summary.json'})")


# -- the parent: one child per target, restarted when it dies ----------------------------------------------


def run_target(name: str, engine: str, seconds: float, crash_dir: Path, trace: bool = False) -> dict:
    out = BUILD / name
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"{engine}.log"
    total = {"target": name, "engine": engine, "seconds": 0.0, "inputs": 0, "crashes": {}, "restarts": 0, "coverage": 0}
    deadline = time.monotonic() + seconds
    stillborn = 0
    with log.open("w") as log_file:
        while (left := deadline - time.monotonic()) > 2:
            stats_path = out / "child.json"
            stats_path.unlink(missing_ok=True)
            (out / "current.bin").unlink(missing_ok=True)
            before = set((out / "artifacts").glob("*")) if (out / "artifacts").is_dir() else set()
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--engine", engine,
                   "--seconds", f"{left:.1f}", "--stats", str(stats_path), "--crash-dir", str(crash_dir)]
            if trace:
                cmd.append("--trace")
            child_started = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
            stuck = False
            try:
                while (code := proc.poll()) is None:
                    time.sleep(1)
                    if stats_path.is_file() and time.time() - stats_path.stat().st_mtime > STUCK_SECONDS:
                        stuck = True
                    if stuck or time.monotonic() - child_started > left + 600:
                        os.killpg(proc.pid, signal.SIGKILL)
                        code = proc.wait()
                        break
            except KeyboardInterrupt:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
            child = json.loads(stats_path.read_text()) if stats_path.is_file() else {"inputs": 0, "crashes": {}, "finished": False}
            total["seconds"] += time.monotonic() - child_started
            total["inputs"] += child["inputs"]
            total["coverage"] = max(total["coverage"], child.get("coverage", 0))
            for sig, c in child["crashes"].items():
                mine = total["crashes"].setdefault(sig, {**c, "count": 0})
                mine["count"] += c["count"]
            if child.get("finished") and code == 0:
                break
            if child["inputs"] == 0 and not child["crashes"]:
                stillborn += 1
                if stillborn == 2:  # it cannot even start: say so instead of restarting for the whole budget
                    total["crashes"][f"the fuzzing process cannot start ({_exit_text(code)})"] = {
                        "count": 1, "input": None, "traceback": str(log.relative_to(REPO))}
                    break
            # The child died: keep what it died on, then go on with the rest of the budget.
            total["restarts"] += 1
            new = sorted(set((out / "artifacts").glob("*")) - before) if (out / "artifacts").is_dir() else []
            died_on = (out / "current.bin") if (out / "current.bin").is_file() else (new[0] if new else None)
            if stuck:
                sig = f"hang in C code (no answer in {STUCK_SECONDS:g} s, the process killed) in target {name}"
            else:
                how = f"{_exit_text(code)}{', libFuzzer: ' + new[0].name.split('-')[0] if new else ''}"
                sig = f"the fuzzing process died ({how}) in target {name}"
            entry = total["crashes"].setdefault(sig, {"count": 0, "input": None, "traceback": str(log.relative_to(REPO))})
            entry["count"] += 1
            if died_on is not None and entry["input"] is None:
                entry["input"] = str(_save(crash_dir / name, sig, died_on.read_bytes()))
    return total


def _exit_text(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit {code}"


def _save(directory: Path, signature: str, data: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (hashlib.sha1(signature.encode()).hexdigest()[:12] + ".bin")
    if not path.exists():
        path.write_bytes(data)
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


# -- coverage comparison -------------------------------------------------------------------------------


def _compare(names: list[str], seconds: float, crash_dir: Path) -> int:
    """Both engines, the same fuzzing time each. The yardstick is smenv's line-to-line branches seen by a tracer
    in a process without atheris's instrumentation (which hides about half the line events): hypothesis is
    traced as it runs; atheris's corpus (every input that gave it new coverage) is replayed afterwards."""
    from fuzz_targets import TARGETS

    print(f"fuzz: coverage of smenv (distinct branches, line to line) in {seconds:g} s per engine")
    print(f"{'target':18} {'hypothesis':>11} {'atheris':>9}  {'inputs h':>9} {'inputs a':>9}  more  (declared)")
    for name in names:
        shutil.rmtree(BUILD / name / "corpus", ignore_errors=True)
        got = {e: run_target(name, e, seconds, crash_dir, trace=(e == "hypothesis")) for e in ("hypothesis", "atheris")}
        h, a = got["hypothesis"], got["atheris"]
        # libFuzzer keeps in corpus/ what it found; the seeds it started from stay in seeds/: both are its coverage.
        a["coverage"] = int(subprocess.run([sys.executable, str(Path(__file__).resolve()), name, "--replay",
                                            str(BUILD / name / "corpus"), str(BUILD / name / "seeds")],
                                           capture_output=True, text=True, cwd=REPO).stdout.split()[-1])
        best = "atheris" if a["coverage"] > h["coverage"] else "hypothesis"
        print(f"{name:18} {h['coverage']:>11} {a['coverage']:>9}  {h['inputs']:>9} {a['inputs']:>9}  {best:10} ({TARGETS[name].engine})", flush=True)
    return 0


# -- the child: one target, one engine, until its time is up -------------------------------------------


class _Recorder:
    def __init__(self, target: str, engine: str, stats: Path, crash_dir: Path, seconds: float):
        self.target, self.engine, self.stats_path = target, engine, stats
        self.crash_dir = crash_dir / target
        self.traces = BUILD / target / "crashes"
        self.inputs = 0
        self.crashes: dict[str, dict] = {}
        self.seconds = seconds
        self.trace = False
        self.arcs: set | None = None
        self.started = self.flushed = time.monotonic()
        self.deadline = self.started + seconds

    def start(self) -> None:
        """The clock starts when the first input is about to run: set-up (imports, instrumentation, seeds) is free."""
        self.started = time.monotonic()
        self.deadline = self.started + self.seconds
        if self.trace and self.arcs is None:
            self.arcs = _trace_smenv()
        self.flush()  # from now on the parent watches this file's age

    def crash(self, data: bytes, exc: BaseException) -> None:
        sig = signature(exc)
        entry = self.crashes.get(sig)
        if entry is None:
            path = _save(self.crash_dir, sig, data)
            self.traces.mkdir(parents=True, exist_ok=True)
            trace = self.traces / (Path(path).stem + ".txt")
            trace.write_text(f"{sig}\n\n" + "".join(traceback.format_exception(exc)))
            entry = self.crashes[sig] = {"count": 0, "input": str(path), "traceback": str(trace.relative_to(REPO))}
        entry["count"] += 1
        self.flush()

    def flush(self, finished: bool = False) -> None:
        data = {"target": self.target, "engine": self.engine, "inputs": self.inputs, "crashes": self.crashes,
                "seconds": time.monotonic() - self.started, "finished": finished,
                "coverage": len(self.arcs) if self.arcs is not None else 0}
        tmp = self.stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.stats_path)
        self.flushed = time.monotonic()


def signature(exc: BaseException) -> str:
    """What makes two crashes the same bug: the exception type and where in smenv it came from."""
    from fuzz_targets import Hang

    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, AssertionError) and frames and frames[-1].filename.endswith("fuzz_targets.py"):
        cause = exc.__context__
        if cause is not None and "\n" in str(getattr(cause, "message", "")):
            return f"{type(cause).__name__} with a multi-line message, raised at {_where(cause, lines=True)}"
        return f"broken wall: {str(exc).splitlines()[0] if str(exc) else 'assertion'}"
    if isinstance(exc, Hang):
        return f"hang (no answer in 20 s) in {_where(exc, lines=False)}"
    return f"{type(exc).__name__} at {_where(exc, lines=True)}"


def _where(exc: BaseException, lines: bool) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f.filename.startswith(SMENV_DIR)] or frames[-1:]
    if not ours:
        return "?"
    f = ours[-1]
    where = os.path.relpath(f.filename, REPO) if f.filename.startswith(str(REPO)) else f.filename
    return f"{where}:{f.lineno} ({f.name})" if lines else f"{where} ({f.name})"


def _child(name: str, engine: str, seconds: float, stats: Path, crash_dir: Path, trace: bool) -> int:
    work_root = Path(tempfile.mkdtemp(prefix=f"smenv-fuzz-{name}-"))
    work = work_root / "work"
    (work / "tmp").mkdir(parents=True)
    recorder = _Recorder(name, engine, stats, crash_dir, seconds)
    if engine == "atheris":
        import atheris

        # Instrument smenv and the parsers it hands user input to, so libFuzzer sees their branches.
        with atheris.instrument_imports(include=["smenv", "pip_requirements_parser", "packaging"]):
            import fuzz_targets
            _import_all_smenv()
    else:
        import fuzz_targets
    from fuzz_targets import ESCAPE, TARGETS, Sandbox

    target = TARGETS[name]
    from smenv.model import hdf5_file

    # A hostile .h5 can keep the HDF5 library busy until the reader's time limit (15 s): every input here is
    # small, so 2 s says the same and leaves the time to other inputs.
    hdf5_file.READ_SECONDS = 2
    os.chdir(work)
    tempfile.tempdir = str(work / "tmp")
    sandbox = Sandbox(work_root, work)
    current = BUILD / name / "current.bin"
    recorder.trace = trace
    target.seeds()  # the engines start even: what the seeds cost (a dry-run plan or two) is done before the clock

    def one(data: bytes) -> None:
        if time.monotonic() >= recorder.deadline:
            _finish(recorder, work_root)
        recorder.inputs += 1
        current.write_bytes(data)  # what the parent saves if this input kills or hangs the process
        try:
            target.run(sandbox, data)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # the property failed: record it and go on
            recorder.crash(data, exc)
            _clean_after_crash(work, work_root, ESCAPE)
        finally:
            for case in work.glob("case*"):
                shutil.rmtree(case, ignore_errors=True)
        if time.monotonic() - recorder.flushed > FLUSH_SECONDS:
            recorder.flush()

    if engine == "atheris":
        import atheris

        out = BUILD / name
        corpus, seeds, artifacts = out / "corpus", out / "seeds", out / "artifacts"
        for d in (corpus, artifacts):
            d.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(seeds, ignore_errors=True)
        seeds.mkdir(parents=True)
        for i, data in enumerate(target.seeds() + _examples(target, SEED_EXAMPLES)):
            (seeds / f"seed-{i:03}").write_bytes(data)
        argv = [sys.argv[0], str(corpus), str(seeds), f"-max_total_time={int(seconds) + 60}", "-timeout=0",
                "-rss_limit_mb=4096", f"-artifact_prefix={artifacts}/", "-print_final_stats=1"]
        atheris.Setup(argv, one)
        recorder.start()
        atheris.Fuzz()  # returns only through _finish (os._exit) or libFuzzer ending the process
        _finish(recorder, work_root)
    _hypothesis_loop(target, one, recorder)
    _finish(recorder, work_root)
    return 0


def _replay(name: str, directories: list[Path]) -> int:
    """smenv's branches seen while the target runs every file of `directories` (no instrumentation)."""
    import warnings

    from fuzz_targets import TARGETS, Sandbox

    warnings.simplefilter("ignore")
    target = TARGETS[name]
    work_root = Path(tempfile.mkdtemp(prefix=f"smenv-fuzz-replay-{name}-"))
    work = work_root / "work"
    (work / "tmp").mkdir(parents=True)
    os.chdir(work)
    tempfile.tempdir = str(work / "tmp")
    sandbox = Sandbox(work_root, work)
    target.seeds()  # as in the child: what the seeds cost is not counted
    arcs = _trace_smenv()
    for path in sorted(p for d in directories if d.is_dir() for p in d.iterdir()):
        try:
            target.run(sandbox, path.read_bytes())
        except BaseException:  # noqa: BLE001 - a crash is counted by the run itself; here only coverage matters
            pass
        for case in work.glob("case*"):
            shutil.rmtree(case, ignore_errors=True)
    sys.settrace(None)
    os.chdir(REPO)
    shutil.rmtree(work_root, ignore_errors=True)
    return len(arcs)


def _import_all_smenv() -> None:
    import pkgutil

    import smenv

    for info in pkgutil.walk_packages(smenv.__path__, "smenv."):
        if not info.name.startswith("smenv.runtime") and info.name != "smenv.__main__":  # in-image code; the CLI itself
            __import__(info.name)


def _examples(target, n: int) -> list[bytes]:
    from hypothesis import HealthCheck, Phase, given, settings

    found: list[bytes] = []

    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(target.inputs())
    def collect(data):
        found.append(data)

    collect()
    return found


def _hypothesis_loop(target, one, recorder: _Recorder) -> None:
    """Fresh random batches of the target's strategy until the time is up (no shrinking: every input counts)."""
    import warnings

    from hypothesis import HealthCheck, Phase, given, settings

    warnings.simplefilter("ignore")

    @settings(max_examples=HYPOTHESIS_BATCH, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(target.inputs())
    def batch(data):
        one(data)

    recorder.start()
    while time.monotonic() < recorder.deadline:
        batch()


def _clean_after_crash(work: Path, work_root: Path, escape: str) -> None:
    """A crash may have left what the walls check for: remove it, or every later input would fail too."""
    for p in (work / "tmp").iterdir():
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    for where in (Path("/tmp"), work_root, work):
        for p in where.glob(f"*{escape}*"):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    for p in work.iterdir():
        if p.name != "tmp" and not p.name.startswith("case"):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _finish(recorder: _Recorder, work_root: Path) -> None:
    recorder.flush(finished=True)
    os.chdir(REPO)
    shutil.rmtree(work_root, ignore_errors=True)
    sys.stdout.flush()
    os._exit(0)  # atheris.Fuzz() never returns; leave the same way from both engines


def _trace_smenv() -> set:
    """Branches of smenv executed (line-to-line arcs), for --compare: the same yardstick for both engines."""
    arcs: set = set()

    def call(frame, event, arg):
        if not frame.f_code.co_filename.startswith(SMENV_DIR):
            return None
        last = [frame.f_lineno]

        def line(frame, event, arg):
            if event == "line":
                arcs.add((frame.f_code, last[0], frame.f_lineno))
                last[0] = frame.f_lineno
            return line

        return line

    sys.settrace(call)
    return arcs


if __name__ == "__main__":
    sys.exit(main())
