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
import json
import os
import re
import subprocess
import tempfile
import urllib.request
from datetime import datetime, timedelta
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from smenv.env.plan import Decision, EnvironmentPlan
from smenv.env.target import UV_PLATFORM, wheel_tags
from smenv.errors import LockError
from smenv.user_dirs import cache_dir

# The uv releases smenv runs with: from the first with every flag _compile passes (--exclude-newer-package
# 0.9.0, --excludes 0.9.10; ../shared/reference/tensorflow-facts.md) to the newest minor the test suite has
# run with. The same range is in pyproject.toml; tests/test_uv_contract.py checks the texts parsed here.
UV_SUPPORTED = SpecifierSet(">=0.9.10,<0.14")
PYPI_SIMPLE = "https://pypi.org/simple"

# Exempt packages are pinned on purpose; their cut-off is lifted by giving them a far date.
NO_CUTOFF = "2999-12-31T00:00:00Z"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# uv's explanation when the only versions before the cut-off are source distributions.
_NO_WHEELS = re.compile(r"Wheels are required for `([^`]+)`|([A-Za-z0-9][A-Za-z0-9._-]*)[^ ]* has no usable wheels")
MAX_WHEEL_RETRIES = 12
# Longest lock error line smenv prints before the log's path; uv's whole text goes to the log and --json.
MAX_MESSAGE = 300
# uv's warning when an index serves a file without an upload time (no PEP 700: pypiserver, devpi, plain
# --find-links pages): under --exclude-newer every such file is dropped, so nothing from that index resolves.
_NO_UPLOAD_TIME = re.compile(r"is missing an upload date")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
# A direct reference (a local wheel file or a wheel URL from requirements.txt).
_DIRECT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])? @ (\S+)")
# The lock's header line naming the packages locked by their sdist's hash (read back from cached locks).
SOURCES_HEADER = "# built from source in a sandbox (locked by the sdist's sha256): "


class _NoUploadTimes(LockError):
    """The index records no upload times, so an as-of cut-off cannot be applied to it."""



@dataclass(frozen=True)
class Lock:
    text: str  # requirements.lock as the image installs it: every package `name==version`, hashed
    python: str
    packages: dict[str, str]  # canonical name -> version
    digest: str  # sha256 of `text`
    download_text: str = ""  # the same, with direct references kept, for downloading on the host
    direct: tuple[str, ...] = ()  # packages that came from a local wheel or a wheel URL
    hashes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> allowed sha256 hex digests
    sources: tuple[str, ...] = ()  # packages locked as sdists, to be built into wheels (env/sdist_build.py)

    @classmethod
    def from_text(cls, text: str, python: str) -> "Lock":
        """Parse uv's output; direct references become `name==version` pins for the image.

        Inside the image a `file://` path does not exist and `--no-index` cannot fetch a URL, but the
        host downloads those wheels into wheels/, where pip finds them by name and version. The
        hashes stay the same, so nothing else can stand in for them.
        """
        packages: dict[str, str] = {}
        direct: list[str] = []
        hashes: dict[str, list[str]] = {}
        lines = []
        current = None
        sources: list[str] = []
        for line in text.splitlines():
            if line.startswith(SOURCES_HEADER):
                sources += [canonicalize_name(p.split("==")[0]) for p in line[len(SOURCES_HEADER):].split()]
            m = _PIN.match(line)
            d = _DIRECT.match(line)
            h = _HASH.search(line)
            if h and current:
                hashes.setdefault(current, []).append(h.group(1))
            if m:
                current = canonicalize_name(m.group(1))
                packages[current] = m.group(3)
            elif d:
                name, url = canonicalize_name(d.group(1)), d.group(3)
                try:
                    _, version, _, _ = parse_wheel_filename(url.rsplit("/", 1)[-1])
                except ValueError:
                    raise LockError(f"{name} comes from {url}, which is not a wheel: only wheels can be locked") from None
                packages[name] = str(version)
                direct.append(name)
                current = name
                line = f"{d.group(1)}{d.group(2) or ''}=={version}" + line[d.end():]
            lines.append(line)
        image_text = "\n".join(lines) + ("\n" if text.endswith("\n") else "")
        digest = "sha256:" + hashlib.sha256(image_text.encode()).hexdigest()
        return cls(image_text, python, packages, digest, text, tuple(direct), {k: tuple(v) for k, v in hashes.items()},
                   tuple(sources))


def uv_binary() -> str:
    """uv's binary, refused (exit 8) outside the range whose flags and messages smenv knows."""
    from uv import find_uv_bin

    version = _uv_version()
    if Version(version) not in UV_SUPPORTED:
        raise LockError(
            f"uv {version} is installed, but smenv works with uv {UV_SUPPORTED} (its flags and messages are "
            f"tested for those releases): pip install 'uv{UV_SUPPORTED}'"
        )
    return find_uv_bin()


def default_index_url() -> str:
    """The index uv resolves against when requirements.txt names none: uv's own settings, else PyPI."""
    return os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL") or PYPI_SIMPLE


def lock(plan: EnvironmentPlan, progress=lambda msg: None, cache: Path | None = None) -> tuple[Lock, list[str]]:
    """Lock for the first Python candidate that resolves; returns the lock and notes on skipped Pythons.

    Locks are cached by everything that decides them (the plan's packages, constraints, cut-off date
    and index, and the uv and smenv versions): a rebuild of a changed model with the same environment
    does not resolve again. SMENV_NO_LOCK_CACHE=1 resolves anew.
    """
    cache = cache or cache_dir("locks")
    key = _cache_key(plan)
    cached = cache / f"{key}.json"
    if _cache_used() and cached.is_file():
        try:
            data = json.loads(cached.read_text())
            progress(f"lock reused from the cache ({cached.name[:16]})")
            return Lock.from_text(data["text"], data["python"]), list(data["notes"])
        except (OSError, ValueError, KeyError):
            pass  # a damaged entry: resolve again and overwrite it
    the_lock, notes = _lock_any_python(plan, progress)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_text(json.dumps({"text": the_lock.download_text, "python": the_lock.python, "notes": notes}))
        os.replace(tmp, cached)
    except OSError:
        pass  # a cache that cannot be written only costs time
    return the_lock, notes


def lock_plan(plan: EnvironmentPlan, progress=lambda msg: None,
              cache: Path | None = None) -> tuple[EnvironmentPlan, Lock, list[str]]:
    """`lock`, leaving out the plan's optional packages (those the model loads without) when the lock
    fails with them: the plan without them, its lock, and the notes saying what was left out and why.
    A lock that fails without them too fails with that error: the conflict is elsewhere. That a plan
    with them failed is remembered beside the cached locks, so a rebuild does not resolve it again."""
    optional = [p for p in plan.packages if p.optional]
    refusal = (cache or cache_dir("locks")) / f"{_cache_key(plan)}.refused.txt" if optional else None
    why_not = _remembered(refusal) if refusal else None
    remembered = why_not is not None
    if not remembered:
        try:
            the_lock, notes = lock(plan, progress, cache)
            return plan, the_lock, notes
        except LockError as exc:
            if refusal is None:
                raise
            why_not = _clip(exc.message, 200) + (f"; uv's explanation: {exc.log_path}" if exc.log_path else "")
            _remember(refusal, why_not)
    progress(f"{', '.join(p.name for p in optional)} did not lock{' when last tried' if remembered else ''}; "
             f"locking {'' if remembered else 'again '}without {'it' if len(optional) == 1 else 'them'}")
    left_out = [f"{p.name} is not installed: it does not lock here ({why_not}), and {p.optional}" for p in optional]
    smaller = replace(plan, packages=tuple(p for p in plan.packages if not p.optional))
    for p, why in zip(optional, left_out):
        smaller = smaller.with_decision(Decision(f"companion:{p.name}", "not installed", why, "warning"))
    the_lock, notes = lock(smaller, progress, cache)
    return smaller, the_lock, [*(f"warning: {why}" for why in left_out), *notes]


def _remembered(path: Path) -> str | None:
    if not _cache_used():
        return None
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _cache_used() -> bool:
    return os.environ.get("SMENV_NO_LOCK_CACHE") != "1"


def _remember(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    except OSError:
        pass  # not remembered: the next build tries the lock again


def _clip(text: str, limit: int) -> str:
    """`text` cut to `limit` at a word, before any parenthesis the cut would leave open."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    while cut.count("(") > cut.count(")"):
        cut = cut[:cut.rindex("(")].rstrip()
    return cut.rstrip(",;:") + " …"


def _cache_key(plan: EnvironmentPlan) -> str:
    from smenv import __version__

    inputs = {
        "packages": [p.requirement for p in plan.packages],
        "constraints": list(plan.constraints),
        "excludes": list(plan.excludes),
        "exempt": list(plan.cutoff_exempt),
        "as_of": plan.as_of,
        "python": list(plan.python_candidates),
        "forced": plan.python_forced,
        "tf": [plan.tensorflow_version, plan.tensorflow_package],
        "index": [plan.index.index_url or default_index_url(), list(plan.index.extra_index_urls),
                  list(plan.index.find_links), plan.index.no_index],
        "uv": _uv_version(),
        "smenv": __version__,
        "platform": UV_PLATFORM,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _uv_version() -> str:
    from importlib.metadata import version

    return version("uv")


def _lock_any_python(plan: EnvironmentPlan, progress) -> tuple[Lock, list[str]]:
    notes: list[str] = []
    failures: list[tuple[str, LockError]] = []
    for python in plan.python_candidates:
        progress(f"locking for Python {python} as of {plan.as_of[:10]}")
        try:
            the_lock, wheel_notes = _lock_with_wheels(plan, python)
            return the_lock, notes + wheel_notes
        except LockError as exc:
            failures.append((python, _plainly(exc, plan, python)))
            notes.append(f"Python {python} did not resolve: {failures[-1][1].message}")
    # The newest Python's reason is the one worth showing; the others are in the notes (--json) and the log.
    python, first = failures[0]
    details = "\n\n".join(f"# Python {p}\n{e.details or e.message}" for p, e in failures)
    log = _write_lock_log(details) if any(e.details for _, e in failures) else None
    message = first.message
    if len(failures) > 1:
        message += f"; Python {', '.join(p for p, _ in failures[1:])} did not resolve either"
    if log:
        message += f". uv's full explanation: {log}"
    raise LockError(message, first.wheel_less, details, tuple(notes) if len(failures) > 1 else (), log)


def _plainly(exc: LockError, plan: EnvironmentPlan, python: str) -> LockError:
    """uv's resolver wall, said in a sentence naming the packages and the requirements lines (conflict.py)."""
    from smenv.env.conflict import describe

    short = describe(exc.details, plan, python) if exc.details else None
    if short is None:  # a failure conflict.py cannot read: uv's own first lines, clipped (the rest is logged)
        if not exc.details or len(exc.message) <= MAX_MESSAGE:
            return exc
        short = exc.message[: MAX_MESSAGE - 1].rstrip() + "…"
    return LockError(short, exc.wheel_less, exc.details)


def _write_lock_log(text: str) -> str | None:
    """uv's whole explanation, kept beside the build logs: the error line stays short."""
    import time

    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    path = state / "smenv" / "logs" / f"lock-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    except OSError:
        return None  # the text is still in --json (error.details)
    return str(path)


def _lock_with_wheels(plan: EnvironmentPlan, python: str) -> tuple[Lock, list[str]]:
    """Lock; where the cut-off leaves a package with source distributions only, lift it for that package,
    and where no wheel of the version needed exists at all, lock that package as an sdist.

    Locks are binary-only by default: building a source distribution runs its build code, which must
    never happen on the host. Old TensorFlow releases depend on packages that published wheels only
    later (absl-py, wrapt, termcolor), so those first take their first wheel release. TF 2.0-2.6 pin
    releases that never had a wheel (termcolor 1.1.0, wrapt 1.12.1, gast 0.2.2, clang 5.0): those listed
    in smenv/data/source_builds.json are locked by their sdist's hash, with the metadata uv needs given
    from that file (so uv builds nothing), and built into wheels in a sandbox (env/sdist_build.py).
    """
    lifted: dict[str, str] = {}  # package -> its own cut-off
    sources: dict[str, str] = {}  # package -> the version locked as an sdist
    cutoff = True
    for _ in range(MAX_WHEEL_RETRIES):
        try:
            the_lock = _lock_for(plan, python, tuple(lifted.items()), cutoff, tuple(sorted(sources.items())))
        except _NoUploadTimes:
            # A private index without PEP 700 upload times made every lock fail (exit 8, "no version of
            # tensorflow==..."), found by tests/test_private_index.py with pypiserver: lock without the
            # date instead, and say so, rather than refusing every such index.
            cutoff, lifted = False, {}
            continue
        except LockError as exc:
            new = [n for n in exc.wheel_less if n not in lifted and n not in sources]
            # Still wheel-less after its cut-off was lifted: the version needed never had a wheel.
            again = [n for n in exc.wheel_less if n in lifted and n not in sources]
            if again:
                known = source_builds()
                unknown = [n for n in again if n not in known]
                if unknown:
                    raise LockError(
                        f"{', '.join(unknown)} has no wheel for Python {python} in the version needed, and smenv builds "
                        "only the source packages listed in smenv/data/source_builds.json (building an unknown "
                        f"sdist's metadata would run its code on the host): {exc.message}", exc.wheel_less) from None
                for name in again:
                    sources[name] = next(iter(known[name]))
                continue
            if not new or not cutoff:
                raise
            for name in new:
                lifted[name] = first_wheel_cutoff(name, python, plan.as_of, plan.index.index_url) or NO_CUTOFF
            continue
        notes = [
            f"{name} had no wheel for Python {python} by {plan.as_of[:10]}: "
            + (f"its first wheel release (cut-off {when[:10]}) is used" if when != NO_CUTOFF else "its newest wheel is used")
            for name, when in lifted.items() if name not in sources
        ]
        known = source_builds()
        notes += [
            f"{name} {version} has no wheel ({known[name][version]['why']}): locked by its sdist's sha256 and built "
            "into a wheel in a throw-away container of the base image (no network, non-root, time and memory limits)"
            for name, version in sorted(sources.items())
        ]
        if not cutoff:
            notes.insert(0, _no_cutoff_note(plan))
        return the_lock, notes
    raise LockError(f"too many packages without wheels before {plan.as_of[:10]}: {', '.join(lifted)}; pass a later --as-of")


def source_builds() -> dict[str, dict[str, dict]]:
    """smenv/data/source_builds.json's packages: name -> version -> {requires_dist, why}."""
    from importlib import resources

    return json.loads(resources.files("smenv.data").joinpath("source_builds.json").read_text(encoding="utf-8"))["packages"]


def _no_cutoff_note(plan: EnvironmentPlan) -> str:
    from smenv.env.requirements import redact_url

    urls = [plan.index.index_url, *plan.index.extra_index_urls] if plan.index.index_url or plan.index.extra_index_urls else []
    where = ", ".join(redact_url(u) for u in urls if u) or "the package index"
    return (
        f"{where} records no upload times (PEP 700), so the as-of date {plan.as_of[:10]} could not be applied: "
        "packages are limited only by the model's and the requirements' pins; pin more in requirements.txt "
        "to keep newer releases out"
    )


def _lock_for(plan: EnvironmentPlan, python: str, lifted: tuple[str, ...] = (), cutoff: bool = True,
              sources: tuple[tuple[str, str], ...] = ()) -> Lock:
    with tempfile.TemporaryDirectory(prefix="smenv-lock-") as tmp:
        work = Path(tmp)
        requirements = [p.requirement for p in plan.packages]
        if plan.excludes:  # the CPU swap: check with `tensorflow` first
            check = [_full_tensorflow(r, plan) for r in requirements]
            checked = _compile(plan, python, work, "check", check, list(plan.constraints), (), lifted, cutoff, sources)
            pins = [f"{name}=={version}" for name, version in sorted(checked.packages.items()) if name not in plan.excludes]
            body = _compile(plan, python, work, "lock", requirements, list(plan.constraints) + pins, plan.excludes, lifted, cutoff, sources)
        else:
            body = _compile(plan, python, work, "lock", requirements, list(plan.constraints), (), lifted, cutoff, sources)
    header = (
        "# requirements.lock written by smenv: every package pinned and hashed.\n"
        f"# TensorFlow {plan.tensorflow_version} ({plan.tensorflow_package}), Python {python}, {UV_PLATFORM}, "
        + (f"packages as of {plan.as_of}.\n" if cutoff else "packages not limited by date (the index records no upload times).\n")
        + "# Install with: pip install --require-hashes --no-deps -r requirements.lock\n"
        + (SOURCES_HEADER + " ".join(f"{n}=={v}" for n, v in sources) + "\n" if sources else "")
    )
    return Lock.from_text(header + body.download_text, python)


def _full_tensorflow(requirement: str, plan: EnvironmentPlan) -> str:
    prefix = f"{plan.tensorflow_package}=="
    return "tensorflow==" + requirement[len(prefix):] if requirement.startswith(prefix) else requirement


def _compile(plan, python, work: Path, name: str, requirements, constraints, excludes, lifted=(), cutoff=True,
             sources=()) -> Lock:
    # Relative names, run from `work`: uv's "# via" annotations quote them, and the lock must not
    # carry a temporary path (the same inputs must give the same bytes).
    work = work / name
    work.mkdir()
    (work / "requirements.in").write_text("\n".join(requirements) + "\n")
    out = work / "requirements.txt"
    cmd = [
        uv_binary(), "pip", "compile", "requirements.in",
        "--python-version", python,
        "--python-platform", UV_PLATFORM,
        "--generate-hashes",
        "--only-binary", ":all:",  # never build (= run) a source distribution on the host
        "--no-header",
        "--output-file", "requirements.txt",
        # Not --quiet: it also silences uv's warning that an index has no upload times (_NO_UPLOAD_TIME).
    ]
    if cutoff:
        cmd += ["--exclude-newer", plan.as_of]
        cutoffs = {package: NO_CUTOFF for package in plan.cutoff_exempt} | dict(lifted)
        for package, when in sorted(cutoffs.items()):
            cmd += ["--exclude-newer-package", f"{package}={when}"]
    if sources:
        # The sdist-only packages: that one version allowed as source, with its dependencies given as
        # data (uv's dependency-metadata), so uv never builds the sdist on the host to read them.
        known = source_builds()
        config = []
        for package, version in sources:
            cmd += ["--no-binary", package]
            constraints = [*constraints, f"{package}=={version}"]
            requires = json.dumps(known[package][version]["requires_dist"])
            config.append(f'[[dependency-metadata]]\nname = "{package}"\nversion = "{version}"\nrequires-dist = {requires}\n')
        (work / "uv.toml").write_text("\n".join(config))
        cmd += ["--config-file", "uv.toml"]
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
        # --default-index, not its legacy alias --index-url: uv lets a UV_DEFAULT_INDEX in the environment
        # win over --index-url, so the requirements' own index was silently replaced (found by
        # tests/test_private_index.py); on the command line --default-index wins over both variables.
        cmd += ["--default-index", index.index_url]
    for url in index.extra_index_urls:
        cmd += ["--extra-index-url", url]
    for link in index.find_links:
        cmd += ["--find-links", link]
    # Never download an interpreter: uv would look for one of the target Python (3.8, 3.9...) and try
    # to fetch it from GitHub, which a host without that route waits on for minutes; with downloads off
    # it reads what it needs with the host's interpreter (../shared/reference/tensorflow-facts.md).
    env = dict(os.environ, NO_COLOR="1", UV_NO_PROGRESS="1", UV_PYTHON_DOWNLOADS="never")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=work)
    if cutoff and _NO_UPLOAD_TIME.search(proc.stderr):
        # Whether or not uv found a solution: without upload times it dropped that index's files.
        raise _NoUploadTimes(_explain(proc.stderr, python))
    if proc.returncode != 0:
        wheel_less = tuple(dict.fromkeys(a or b for a, b in _NO_WHEELS.findall(proc.stderr)))
        raise LockError(_explain(proc.stderr, python), wheel_less, _ANSI.sub("", proc.stderr).strip())
    return Lock.from_text(out.read_text(), python)


def first_wheel_cutoff(name: str, python: str, after: str, index_url: str | None) -> str | None:
    """A cut-off just past the first final release, after `after`, with a wheel for this target.

    Reads upload times from the index's JSON simple API (PEP 691/700); None when the index has no
    such API or is private (credentials are never sent from here).
    """
    base = (index_url or default_index_url()).rstrip("/")
    if "@" in base.split("//", 1)[-1].split("/", 1)[0]:
        return None
    request = urllib.request.Request(f"{base}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            files = json.load(response).get("files", [])
    except (OSError, ValueError):
        return None
    wanted = wheel_tags(python)
    times = []
    for f in files:
        uploaded = f.get("upload-time")
        if not uploaded or uploaded <= after or not f.get("filename", "").endswith(".whl") or f.get("yanked"):
            continue
        try:
            _, version, _, tags = parse_wheel_filename(f["filename"])
        except ValueError:
            continue
        if not version.is_prerelease and tags & wanted:
            times.append(uploaded)
    if not times:
        return None
    # A release's files are uploaded within minutes; a day's margin takes all of them in.
    first = datetime.fromisoformat(min(times).replace("Z", "+00:00")) + timedelta(days=1)
    return first.strftime("%Y-%m-%dT%H:%M:%SZ")


def _explain(stderr: str, python: str) -> str:
    """uv's resolver explanation, trimmed to the lines that name the packages in conflict."""
    lines = [_ANSI.sub("", l).strip(" ╰─▶×│") .strip() for l in stderr.splitlines()]
    lines = [l for l in lines if l and not l.startswith(("hint:", "help:", "warning:", "Resolved "))]
    text = " ".join(lines[:8]) or "uv failed without a message"
    return f"no set of packages satisfies the environment for Python {python}: {text}"
