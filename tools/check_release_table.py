#!/usr/bin/env python3
"""Check (default) or regenerate (--write) smenv/data/tf_releases.json against PyPI.

    python3 tools/check_release_table.py                 # compare the committed table with PyPI; exit 1 on a mismatch
    python3 tools/check_release_table.py --write         # rewrite the PyPI-derived columns, keep cuda/cudnn
    python3 tools/check_release_table.py --source-md PATH [--write]
                                                          # also take/verify cuda/cudnn from a local copy of
                                                          # tensorflow/docs site/en/install/source.md

Standard library only. What it reads from the index, for every final release of `tensorflow` from 1.15.0 on:

* the project JSON of tensorflow, tensorflow-cpu and tensorflow-gpu (https://pypi.org/pypi/<name>/json):
  file names (-> CPython tags and platform tags of the Linux x86_64 wheels), upload times, yanked flags,
  Requires-Python;
* from ONE Linux x86_64 `tensorflow` wheel per release (the one for the newest CPython), read with HTTP range
  requests so only the zip directory and three small members are transferred:
  - `*.dist-info/METADATA`: Requires-Dist (the keras pin, the and-cuda extra's nvidia-* pins) and Provides-Extra;
  - `.../include/tensorflow/core/public/version.h`: TF_GRAPH_DEF_VERSION (graph_producer);
  - `.../python/platform/build_info.py`: whether the wheel is a CUDA build and its CUDA/cuDNN versions.
  For releases whose GPU route is the separate `tensorflow-gpu` package, build_info.py is read from that
  package's wheel instead.

The only hand-sourced columns are "cuda" and "cudnn" (tensorflow/docs, "Tested build configurations", Linux GPU
table). --write keeps them as they are in the committed table; a release missing from the table gets them from
--source-md if given, else from the earliest release of the same X.Y already in the table, else null (reported).
Check mode also cross-checks them against what the wheels say (build_info.py, and the and-cuda pins).

Exit status: 0 = table matches, 1 = mismatch (diff printed), 2 = PyPI unreachable or another error.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import email.parser
import hashlib
import io
import json
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "smenv" / "data" / "tf_releases.json"
DEFAULT_PYPI = "https://pypi.org"
FIRST = (1, 15, 0)
GENERATED_BY = "tools/check_release_table.py --write"
USER_AGENT = "smenv-check-release-table/1 (+python urllib)"

HAND_COLUMNS = ("cuda", "cudnn")
# Every column of a record. All but HAND_COLUMNS are derived from PyPI by this tool.
COLUMNS = (
    "version", "release_date", "yanked", "python", "requires_python", "manylinux",
    "cpu_wheel", "tensorflow_gpu_wheel",
    "keras", "keras_major", "keras_requires_dist",
    "gpu_route", "pip_cuda", "gpu_build_info",
    "cuda", "cudnn",
    "graph_producer",
)
GPU_ROUTES = ("tensorflow-gpu", "cuda-base-image", "pip-cuda")
KERAS_NAMES = ("keras", "keras-nightly", "tf-keras", "tf-keras-nightly")

SOURCES = [
    "PyPI project JSON https://pypi.org/pypi/tensorflow/json: release list (final releases >= 1.15.0, "
    "post releases included), release_date (earliest upload_time of any file of the release, UTC date), yanked, "
    "python (cpXY tags of the Linux x86_64 wheels; cp27 left out), manylinux (their platform tag), requires_python",
    "PyPI project JSON https://pypi.org/pypi/tensorflow-cpu/json: cpu_wheel (Linux x86_64 wheels of the same version)",
    "PyPI project JSON https://pypi.org/pypi/tensorflow-gpu/json: tensorflow_gpu_wheel (Linux x86_64 wheels of the "
    "same version)",
    "tensorflow-<version>.dist-info/METADATA inside the Linux x86_64 tensorflow wheel for the newest CPython of each "
    "release (read by HTTP range requests): keras (Requires-Dist on 'keras', 'bundled tf.keras' when there is none), "
    "keras_requires_dist (raw Requires-Dist lines on keras/keras-nightly/tf-keras), keras_major, "
    "gpu_route (Provides-Extra: and-cuda -> pip-cuda), pip_cuda (the and-cuda extra's nvidia-cuda-runtime and "
    "nvidia-cudnn pins); its sha256 is compared with PyPI's core-metadata hash",
    "include/tensorflow/core/public/version.h inside the same wheel: graph_producer (TF_GRAPH_DEF_VERSION)",
    "python/platform/build_info.py inside the same wheel (inside the tensorflow-gpu wheel when gpu_route is "
    "tensorflow-gpu): gpu_build_info (is_cuda_build, cuda_version, cudnn_version)",
    "HAND-SOURCED cuda, cudnn: tensorflow/docs site/en/install/source.md, 'Tested build configurations' > Linux > GPU "
    "table (https://github.com/tensorflow/docs/blob/master/site/en/install/source.md, read at commit "
    "7c3650212740204359d4ceae481abc79345541be, 2026-03-11; shared/reference/tensorflow-facts.md quotes the same "
    "table). The table lists one row per X.Y (X.Y.0, or 2.16.1 for 2.16); patch and post releases carry their "
    "X.Y row's values. 1.15.x: row tensorflow_gpu-1.15.0.",
]
NOTES = [
    "One record per final release on PyPI from 1.15.0 to the newest, sorted by version. Pre-releases (rc) are "
    "left out. There is no 1.15.1 and no 2.16.0 final on PyPI (2.16 starts at 2.16.1).",
    "Post releases are records of their own (2.15.0.post1): pip's 'tensorflow==2.15.0' does not select "
    "2.15.0.post1, so an image pin must name the exact one. 2.15.0.post1 ships the same TensorFlow build as 2.15.0 "
    "(same graph producer, same python tags); only its METADATA differs: its and-cuda extra no longer pulls "
    "tensorrt. Look a model's TF version up by its exact version; a post release sorts after its base release.",
    "python lists CPython 3 minors only. cp27 wheels exist for tensorflow 1.15.0, 2.0.0 and 2.1.0 (and for "
    "tensorflow-cpu/-gpu of those versions where published) and are not listed.",
    "gpu_route: 'tensorflow-gpu' for 1.15.x and 2.0.x (the plain tensorflow wheels of 1.15.2+ and 2.0.x are CPU "
    "builds; the 1.15.0 tensorflow wheel alone happens to be a CUDA 10 build), 'cuda-base-image' where the plain "
    "tensorflow wheel is a CUDA build without an and-cuda extra (2.1-2.13), 'pip-cuda' where its METADATA has "
    "Provides-Extra: and-cuda (2.14+).",
    "keras_major: 2 for bundled tf.keras (< 2.6) and for keras 2.x pins (2.6-2.15); 3 for keras>=3 (2.16+). "
    "keras is the wheel's own pin, as published: 2.6.0 and 2.6.1 say keras~=2.6 (which admits any keras 2.x >= 2.6), "
    "2.6.2+ keras>=2.6.0,<2.7; 2.7-2.9 pin '>=X.Y.0rc0'; 2.13 needs keras>=2.13.1. 2.5.x bundles tf.keras but its "
    "wheel also requires keras-nightly~=2.5.0.dev (see keras_requires_dist).",
    "python is per release, from the wheels: patch releases often drop the oldest CPython of their X.Y, so they "
    "can be narrower than the docs table, which lists X.Y.0 only (e.g. 2.11.1 has no cp37, 2.5.3 and 2.6.3+ no "
    "cp36, 1.15.5/2.0.4/2.1.3+/2.2.2+/2.3.2+ no cp35). The docs' '3.3-3.7' for 1.15.0 and 2.0.0 is wider than the "
    "cp35-cp37 wheels actually published.",
    "tensorflow_gpu_wheel: tensorflow-gpu has Linux wheels through 2.11.0 only (none for 2.11.1; 2.12.0 is an sdist "
    "stub that refuses to install). cpu_wheel: tensorflow-cpu exists for 1.15.0 and 2.1.0+, not for 1.15.2-1.15.5 "
    "or 2.0.x.",
]


class PyPIError(Exception):
    """The index could not be read."""


# ----------------------------------------------------------------------------------------------------- versions

_FINAL = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:\.post(\d+))?$")


def version_key(v: str) -> tuple[int, int, int, int]:
    """Sort key of a final (or post) release 'X.Y.Z[.postN]'; a post release sorts after its base."""
    m = _FINAL.match(v)
    if not m:
        raise ValueError(f"not a final release version: {v!r}")
    post = -1 if m.group(4) is None else int(m.group(4))
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), post


def is_final(v: str) -> bool:
    return bool(_FINAL.match(v))


def minor_of(v: str) -> str:
    a, b = v.split(".")[:2]
    return f"{a}.{b}"


def py_key(p: str) -> tuple[int, ...]:
    return tuple(int(x) for x in p.split("."))


# ------------------------------------------------------------------------------------------------------ network

class Http:
    def __init__(self, timeout: float, retries: int = 2):
        self.timeout = timeout
        self.retries = retries

    def get(self, url: str, headers: dict[str, str] | None = None) -> bytes:
        h = {"User-Agent": USER_AGENT}
        h.update(headers or {})
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=h), timeout=self.timeout) as r:
                    return r.read()
            except urllib.error.HTTPError as e:
                last = e
                if e.code < 500 and e.code != 429:
                    break
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as e:
                last = e
            if attempt < self.retries:
                time.sleep(1.0 + 2 * attempt)
        reason = getattr(last, "reason", None) or last
        raise PyPIError(f"GET {url} failed: {reason}")

    def json(self, url: str) -> dict:
        return json.loads(self.get(url, {"Accept": "application/json"}))


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file, fetched with HTTP Range requests (with read-ahead)."""

    READ_AHEAD = 256 * 1024

    def __init__(self, http: Http, url: str, size: int):
        super().__init__()
        self.http, self.url, self.size = http, url, size
        self.pos = 0
        self.buf_start, self.buf = 0, b""
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self.pos
        n = min(n, self.size - self.pos)
        if n <= 0:
            return b""
        end = self.pos + n
        if not (self.buf_start <= self.pos and end <= self.buf_start + len(self.buf)):
            want_end = min(self.size, max(end, self.pos + self.READ_AHEAD))
            data = self.http.get(self.url, {"Range": f"bytes={self.pos}-{want_end - 1}"})
            self.requests += 1
            if len(data) == self.size and self.pos != 0:  # server ignored Range: keep the whole file
                self.buf_start, self.buf = 0, data
            else:
                self.buf_start, self.buf = self.pos, data
        off = self.pos - self.buf_start
        out = self.buf[off:off + n]
        self.pos += len(out)
        return out


# -------------------------------------------------------------------------------------------------- index facts

def wheel_tags(filename: str) -> tuple[list[str], str, str] | None:
    """(python tags, abi tag, platform tag) of a wheel file name, or None for a non-wheel."""
    if not filename.endswith(".whl"):
        return None
    parts = filename[:-4].split("-")
    if len(parts) < 5:
        return None
    return parts[-3].split("."), parts[-2], parts[-1]


def is_linux_x86_64(plat: str) -> bool:
    return any("linux" in p and p.endswith("x86_64") for p in plat.split("."))


def linux_wheels(files: list[dict]) -> list[dict]:
    """Non-yanked Linux x86_64 CPython 3 wheels, each annotated with '_python' (e.g. '3.11') and '_plat'."""
    out = []
    for f in files:
        if f.get("yanked"):
            continue
        tags = wheel_tags(f["filename"])
        if not tags:
            continue
        pys, _abi, plat = tags
        if not is_linux_x86_64(plat):
            continue
        minors = [f"3.{t[3:]}" for t in pys if re.fullmatch(r"cp3\d+", t)]
        if not minors:  # cp27 and anything that is not a CPython 3 tag
            continue
        for m in minors:
            g = dict(f)
            g["_python"], g["_plat"] = m, plat
            out.append(g)
    return out


def python_list(wheels: list[dict]) -> list[str]:
    return sorted({w["_python"] for w in wheels}, key=py_key)


def wheel_summary(files: list[dict] | None) -> dict:
    wheels = linux_wheels(files or [])
    return {"exists": bool(wheels), "python": python_list(wheels)}


# ----------------------------------------------------------------------------------------------- requirements

_REQ = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[(?P<extras>[^\]]*)\])?\s*"
    r"(?:\((?P<pspec>[^)]*)\)|(?P<spec>[^;]*))?\s*(?:;\s*(?P<marker>.*))?$"
)
_OP_ORDER = {"===": 0, "==": 1, "~=": 2, ">=": 3, ">": 4, "!=": 5, "<=": 6, "<": 7}


def norm_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_req(line: str) -> tuple[str, list[tuple[str, str]], str]:
    """'keras (<2.16,>=2.15.0)' -> ('keras', [('>=','2.15.0'), ('<','2.16')], marker)."""
    m = _REQ.match(line)
    if not m:
        raise ValueError(f"cannot parse requirement {line!r}")
    spec = (m.group("pspec") or m.group("spec") or "").strip()
    specs = []
    for s in filter(None, (x.strip() for x in spec.split(","))):
        sm = re.match(r"^(===|==|~=|>=|<=|!=|>|<)\s*(\S+)$", s)
        if not sm:
            raise ValueError(f"cannot parse specifier {s!r} in {line!r}")
        specs.append((sm.group(1), sm.group(2)))
    specs.sort(key=lambda t: _OP_ORDER[t[0]])  # stable: keeps the file's order within one operator
    return norm_name(m.group("name")), specs, (m.group("marker") or "").strip()


def format_req(name: str, specs: list[tuple[str, str]]) -> str:
    return name + ",".join(op + v for op, v in specs)


def keras_major_of(specs: list[tuple[str, str]]) -> int | None:
    for op, v in specs:
        if op in ("===", "==", "~=", ">=", ">"):
            return int(v.split(".")[0])
    for op, v in specs:  # only an upper bound: '<2.8' -> 2, '<3' -> 2
        if op in ("<", "<="):
            parts = [int(p) for p in re.findall(r"\d+", v)[:2]] + [0]
            return parts[0] if (op == "<=" or parts[1] > 0) else parts[0] - 1
    return None


def marker_extra(marker: str) -> str | None:
    m = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", marker)
    return norm_name(m.group(1)) if m else None


# --------------------------------------------------------------------------------------------- wheel contents

def read_wheel(http: Http, url: str, size: int, want_metadata: bool = True) -> dict:
    """METADATA text, version.h text and build_info.py text of one remote wheel (missing ones are None)."""
    zf = zipfile.ZipFile(RangeFile(http, url, size))
    names = zf.namelist()

    def pick(pred):
        hits = sorted((n for n in names if pred(n)), key=len)
        return hits[0] if hits else None

    meta = pick(lambda n: n.endswith(".dist-info/METADATA") and n.count("/") == 1) if want_metadata else None
    vh = pick(lambda n: n.endswith("include/tensorflow/core/public/version.h"))
    bi = pick(lambda n: n.endswith("python/platform/build_info.py"))
    return {
        "metadata": zf.read(meta) if meta else None,
        "version_h": zf.read(vh).decode("utf-8", "replace") if vh else None,
        "build_info": zf.read(bi).decode("utf-8", "replace") if bi else None,
    }


def parse_build_info(text: str | None, package: str) -> dict:
    info = {"package": package, "is_cuda_build": None, "cuda_version": None, "cudnn_version": None}
    if not text:
        return info
    m = re.search(r"""is_cuda_build['"]?\s*[,:=]\s*(True|False)""", text)
    if m:
        info["is_cuda_build"] = m.group(1) == "True"
    for key in ("cuda_version", "cudnn_version"):
        m = re.search(key + r"""(?:_number)?['"]?\s*[,:=]\s*['"]([^'"]*)['"]""", text)
        if m and m.group(1):
            info[key] = m.group(1)
    return info


def pick_wheel(files: list[dict]) -> dict | None:
    """The Linux x86_64 wheel for the newest CPython (ties: the file name)."""
    wheels = linux_wheels(files)
    if not wheels:
        return None
    return max(wheels, key=lambda w: (py_key(w["_python"]), w["filename"]))


# ------------------------------------------------------------------------------------------------ derivation

def derive_release(http: Http, version: str, tf_files: list[dict], cpu_files: list[dict] | None,
                   gpu_files: list[dict] | None, base_url: str, warnings: list[str]) -> dict:
    """Every PyPI-derived column of one release (hand columns are added by the caller)."""
    rec: dict = {"version": version}
    rec["release_date"] = min(f.get("upload_time_iso_8601") or f["upload_time"] for f in tf_files)[:10]
    rec["yanked"] = all(f.get("yanked") for f in tf_files)
    wheels = linux_wheels(tf_files)
    if not wheels:
        raise PyPIError(f"tensorflow {version}: no Linux x86_64 CPython 3 wheel on the index")
    rec["python"] = python_list(wheels)
    rps = sorted({w.get("requires_python") or "" for w in wheels})
    rec["requires_python"] = (rps[0] or None) if len(rps) == 1 else " | ".join(rps)
    plats = sorted({w["_plat"] for w in wheels})
    rec["manylinux"] = plats[0] if len(plats) == 1 else " | ".join(plats)
    rec["cpu_wheel"] = wheel_summary(cpu_files)
    rec["tensorflow_gpu_wheel"] = wheel_summary(gpu_files)

    w = pick_wheel(tf_files)
    contents = read_wheel(http, urllib.parse.urljoin(base_url, w["url"]), int(w["size"]))
    raw = contents["metadata"]
    if raw is None:
        raise PyPIError(f"tensorflow {version}: {w['filename']} has no .dist-info/METADATA")
    expected = (w.get("core-metadata") or w.get("data-dist-info-metadata") or {})
    if isinstance(expected, dict) and expected.get("sha256"):
        got = hashlib.sha256(raw).hexdigest()
        if got != expected["sha256"]:
            warnings.append(f"{version}: METADATA of {w['filename']} has sha256 {got}, "
                            f"PyPI's core-metadata says {expected['sha256']}")
    msg = email.parser.Parser().parsestr(raw.decode("utf-8", "replace"), headersonly=True)
    requires = [str(x) for x in (msg.get_all("Requires-Dist") or [])]
    extras = sorted({norm_name(str(x)) for x in (msg.get_all("Provides-Extra") or [])})

    keras_lines, keras_req = [], None
    pip_cuda = {}
    for line in requires:
        name, specs, marker = parse_req(line)
        if name in KERAS_NAMES:
            keras_lines.append(line.strip())
            if name == "keras" and not marker_extra(marker):
                keras_req = (name, specs, marker)
        if marker_extra(marker) == "and-cuda":
            if re.fullmatch(r"nvidia-cuda-runtime-cu\d+", name):
                pip_cuda["cuda_runtime"] = format_req(name, specs)
            elif re.fullmatch(r"nvidia-cudnn-cu\d+", name):
                pip_cuda["cudnn"] = format_req(name, specs)
    rec["keras_requires_dist"] = keras_lines
    if keras_req is None:
        rec["keras"] = "bundled tf.keras"
        rec["keras_major"] = 2
    else:
        name, specs, marker = keras_req
        rec["keras"] = format_req(name, specs) + (f"; {marker}" if marker else "")
        rec["keras_major"] = keras_major_of(specs)

    has_and_cuda = "and-cuda" in extras
    rec["pip_cuda"] = (pip_cuda or None) if has_and_cuda else None
    tf_build = parse_build_info(contents["build_info"], "tensorflow")
    if has_and_cuda:
        route = "pip-cuda"
    elif version_key(version) < (2, 1, 0, -1):
        route = "tensorflow-gpu"
    elif tf_build["is_cuda_build"]:
        route = "cuda-base-image"
    else:
        route = None
        warnings.append(f"{version}: the tensorflow wheel is not a CUDA build and has no and-cuda extra: no GPU route")
    rec["gpu_route"] = route

    if route == "tensorflow-gpu":
        gw = pick_wheel(gpu_files or [])
        if gw is None:
            warnings.append(f"{version}: gpu_route tensorflow-gpu but tensorflow-gpu has no Linux x86_64 wheel")
            rec["gpu_build_info"] = parse_build_info(None, "tensorflow-gpu")
        else:
            gc = read_wheel(http, urllib.parse.urljoin(base_url, gw["url"]), int(gw["size"]), want_metadata=False)
            rec["gpu_build_info"] = parse_build_info(gc["build_info"], "tensorflow-gpu")
    else:
        rec["gpu_build_info"] = tf_build

    m = re.search(r"#define\s+TF_GRAPH_DEF_VERSION\s+(\d+)", contents["version_h"] or "")
    rec["graph_producer"] = int(m.group(1)) if m else None
    if rec["graph_producer"] is None:
        warnings.append(f"{version}: no TF_GRAPH_DEF_VERSION found in {w['filename']}")
    return rec


def fetch_index(http: Http, pypi: str) -> dict[str, dict]:
    projects = {}
    for name in ("tensorflow", "tensorflow-cpu", "tensorflow-gpu"):
        url = f"{pypi}/pypi/{name}/json"
        try:
            data = http.json(url)
        except PyPIError as e:
            raise PyPIError(f"cannot read the PyPI project JSON of {name}: {e}") from None
        data["_url"] = url
        projects[name] = data
    return projects


def release_versions(tf_project: dict) -> list[str]:
    out = []
    for v, files in tf_project["releases"].items():
        if not files or not is_final(v) or version_key(v)[:3] < FIRST:
            continue
        if all(f.get("yanked") for f in files):
            continue  # a fully yanked release is not offered by pip: leave it out (reported by the checker)
        out.append(v)
    return sorted(out, key=version_key)


def derive_all(http: Http, projects: dict[str, dict], jobs: int, warnings: list[str]) -> list[dict]:
    tf = projects["tensorflow"]
    versions = release_versions(tf)
    for v, files in tf["releases"].items():
        if files and is_final(v) and version_key(v)[:3] >= FIRST and all(f.get("yanked") for f in files):
            warnings.append(f"{v}: every file is yanked on PyPI: left out of the table")
    cpu = projects["tensorflow-cpu"]["releases"]
    gpu = projects["tensorflow-gpu"]["releases"]

    def one(v: str) -> dict:
        return derive_release(http, v, tf["releases"][v], cpu.get(v), gpu.get(v), tf["_url"], warnings)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        records = list(pool.map(one, versions))
    return records


# ------------------------------------------------------------------------------------------ hand-sourced columns

def parse_source_md(text: str) -> dict[str, dict[str, str]]:
    """{'2.15.0': {'cuda': '12.2', 'cudnn': '8.9'}, ...} from the Linux GPU table of source.md."""
    m = re.search(r"### Linux(.*?)(?:\n### |\Z)", text, re.S)
    if not m:
        raise ValueError("source.md: no '### Linux' section")
    gpu = re.search(r"#### GPU(.*?)</table>", m.group(1), re.S)
    if not gpu:
        raise ValueError("source.md: no '#### GPU' table under Linux")
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", gpu.group(1), re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
        if not cells:
            continue
        vm = re.fullmatch(r"tensorflow(?:_gpu)?-(\d+\.\d+\.\d+)", cells[0])
        if vm and len(cells) >= 6:
            rows[vm.group(1)] = {"cudnn": cells[-2], "cuda": cells[-1]}
    return rows


def hand_from_source(version: str, rows: dict[str, dict[str, str]]) -> dict[str, str] | None:
    base = ".".join(version.split(".")[:3])
    if base in rows:
        return rows[base]
    same_minor = sorted((v for v in rows if minor_of(v) == minor_of(version)), key=version_key)
    return rows[same_minor[0]] if same_minor else None


def fill_hand_columns(records: list[dict], old: dict[str, dict], rows: dict | None,
                      warnings: list[str]) -> None:
    by_minor: dict[str, dict] = {}
    for v in sorted(old, key=version_key):
        by_minor.setdefault(minor_of(v), old[v])
    for rec in records:
        v = rec["version"]
        src = None
        if rows is not None:
            src = hand_from_source(v, rows)
            if src is None:
                warnings.append(f"{v}: no row for {minor_of(v)} in source.md")
        if src is None and v in old:
            src = {c: old[v].get(c) for c in HAND_COLUMNS}
        if src is None and minor_of(v) in by_minor:
            src = {c: by_minor[minor_of(v)].get(c) for c in HAND_COLUMNS}
        for c in HAND_COLUMNS:
            rec[c] = (src or {}).get(c)
            if rec[c] is None:
                warnings.append(f"{v}: hand-sourced column {c!r} is empty: fill it from tensorflow/docs source.md")


def _prefix_match(a: str, b: str) -> bool:
    """'12.5' vs '12.5.1', '10.0' vs '10', '8.9' vs '8': the shorter is a prefix of the longer."""
    pa, pb = a.split("."), b.split(".")
    n = min(len(pa), len(pb))
    return pa[:n] == pb[:n]


def cross_check(rec: dict) -> list[str]:
    """Disagreements between the hand-sourced cuda/cudnn and what the wheels themselves say."""
    out = []
    v, cuda, cudnn = rec["version"], rec.get("cuda"), rec.get("cudnn")
    bi = rec.get("gpu_build_info") or {}
    if cuda and bi.get("cuda_version") and not _prefix_match(cuda, bi["cuda_version"]):
        out.append(f"{v}: cuda {cuda!r} (docs) but {bi['package']}'s build_info.py says {bi['cuda_version']!r}")
    if cudnn and bi.get("cudnn_version") and not _prefix_match(cudnn, bi["cudnn_version"]):
        out.append(f"{v}: cudnn {cudnn!r} (docs) but {bi['package']}'s build_info.py says {bi['cudnn_version']!r}")
    pc = rec.get("pip_cuda") or {}
    for col, key in (("cuda", "cuda_runtime"), ("cudnn", "cudnn")):
        req, hand = pc.get(key), rec.get(col)
        if not req or not hand:
            continue
        _n, specs, _m = parse_req(req)
        lows = [s for op, s in specs if op in ("==", "~=", ">=")]
        if lows and not _prefix_match(hand, ".".join(lows[0].split(".")[:2])):
            out.append(f"{v}: {col} {hand!r} (docs) but the and-cuda extra pins {req!r}")
    return out


# --------------------------------------------------------------------------------------------------- file I/O

def dump(table: dict) -> str:
    return json.dumps(table, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def build_table(records: list[dict]) -> dict:
    return {
        "_generated_by": GENERATED_BY,
        "_notes": NOTES,
        "_sources": SOURCES,
        "releases": sorted(records, key=lambda r: version_key(r["version"])),
    }


def load_table(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def diff_records(old: dict[str, dict], new: dict[str, dict]) -> list[str]:
    lines = []
    for v in sorted(set(new) - set(old), key=version_key):
        lines.append(f"- {v}: released on PyPI ({new[v]['release_date']}) but missing from the table")
    for v in sorted(set(old) - set(new), key=version_key):
        lines.append(f"- {v}: in the table but not a (non-yanked) final release on PyPI")
    for v in sorted(set(old) & set(new), key=version_key):
        o, n = old[v], new[v]
        for col in COLUMNS:
            if col in HAND_COLUMNS:
                continue
            if col not in o:
                lines.append(f"- {v}: column {col!r} missing from the table (PyPI: {json.dumps(n.get(col))})")
            elif o[col] != n.get(col):
                lines.append(f"- {v}: {col}: table {json.dumps(o[col], sort_keys=True)} "
                             f"!= PyPI {json.dumps(n.get(col), sort_keys=True)}")
        for col in sorted(set(o) - set(COLUMNS)):
            lines.append(f"- {v}: unknown column {col!r} in the table")
    return lines


# ------------------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true",
                    help="regenerate the PyPI-derived columns (keeps cuda/cudnn) and write the table")
    ap.add_argument("--table", type=Path, default=TABLE, help=f"the table (default: {TABLE.relative_to(REPO)})")
    ap.add_argument("--source-md", type=Path,
                    help="local copy of tensorflow/docs site/en/install/source.md: take (--write) or verify cuda/cudnn")
    ap.add_argument("--pypi-url", default=DEFAULT_PYPI, help="index base URL serving /pypi/<name>/json")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per HTTP request (default 60)")
    ap.add_argument("--jobs", type=int, default=4, help="wheels read in parallel (default 4)")
    args = ap.parse_args(argv)

    http = Http(args.timeout)
    warnings: list[str] = []
    try:
        projects = fetch_index(http, args.pypi_url.rstrip("/"))
    except PyPIError as e:
        print(f"error: PyPI is unreachable or did not answer ({e}).\n"
              f"       This command needs network access to {args.pypi_url}; nothing was checked or written.",
              file=sys.stderr)
        return 2
    rows = None
    if args.source_md:
        rows = parse_source_md(args.source_md.read_text(encoding="utf-8"))

    old_table = load_table(args.table) if args.table.exists() else {"releases": []}
    old = {r["version"]: r for r in old_table.get("releases", [])}
    try:
        records = derive_all(http, projects, args.jobs, warnings)
    except PyPIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    if args.write:
        fill_hand_columns(records, old, rows, warnings)
        for rec in records:
            warnings.extend(cross_check(rec))
        text = dump(build_table(records))
        args.table.parent.mkdir(parents=True, exist_ok=True)
        changed = not args.table.exists() or args.table.read_text(encoding="utf-8") != text
        args.table.write_text(text, encoding="utf-8")
        for w in sorted(set(warnings)):
            print(f"warning: {w}", file=sys.stderr)
        print(f"{'wrote' if changed else 'unchanged'}: {args.table} ({len(records)} releases, "
              f"{records[0]['version']} .. {records[-1]['version']})")
        return 0

    if not args.table.exists():
        print(f"error: {args.table} does not exist; run with --write", file=sys.stderr)
        return 2
    new = {r["version"]: r for r in records}
    problems = diff_records(old, new)
    for v, rec in old.items():
        for c in HAND_COLUMNS:
            if not rec.get(c):
                problems.append(f"- {v}: hand-sourced column {c!r} is empty")
        if v in new:
            merged = dict(new[v], **{c: rec.get(c) for c in HAND_COLUMNS})
            problems.extend(f"- {p}" for p in cross_check(merged))
            if rows is not None:
                want = hand_from_source(v, rows)
                for c in HAND_COLUMNS:
                    if want is not None and rec.get(c) != want[c]:
                        problems.append(f"- {v}: {c}: table {rec.get(c)!r} != source.md {want[c]!r}")
    if old_table.get("releases") != sorted(old_table.get("releases", []), key=lambda r: version_key(r["version"])):
        problems.append("- releases are not sorted by version")
    for key, want in (("_generated_by", GENERATED_BY), ("_notes", NOTES), ("_sources", SOURCES)):
        if old_table.get(key) != want:
            problems.append(f"- top-level {key!r} differs from what this tool writes")
    if args.table.read_text(encoding="utf-8") != dump(old_table):
        problems.append("- the file is not in canonical form (sorted keys, 2-space indent, trailing newline)")
    for w in sorted(set(warnings)):
        print(f"warning: {w}", file=sys.stderr)
    if problems:
        print(f"{args.table}: {len(problems)} mismatch(es) with PyPI:")
        print("\n".join(problems))
        print("Run `python3 tools/check_release_table.py --write` to regenerate the PyPI-derived columns.")
        return 1
    print(f"OK: {args.table} matches PyPI ({len(new)} releases, {records[0]['version']} .. {records[-1]['version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
