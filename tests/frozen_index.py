"""A package index frozen in the repository, served on 127.0.0.1, so locks do not move with the live index.

The data in tests/index/ is what the live index served on the day it was recorded:
- `simple/<project>.json`: the project's PEP 691 JSON page (file names, sha256 hashes, PEP 700 upload
  times, requires-python, yanked), as served, minus the `url`s;
- `metadata/<wheel file name>.metadata`: the wheel's METADATA file (PEP 658), for every wheel the
  resolver looked at.

Served, every wheel advertises its metadata (`core-metadata`), so uv reads `.metadata` and never the
wheel. A request for the file itself is redirected to the live file host: only the Docker tests
download wheels (hash-checked, so the bytes cannot differ), and the unit tests run with no network.

Refreshing (after adding a test that locks something new, or to move the frozen day forward):

    SMENV_FREEZE_INDEX=record .venv/bin/python -m pytest -m "not network"

records whatever is missing from the live index (PyPI, or SMENV_FREEZE_UPSTREAM) and serves it; then
`SMENV_FREEZE_INDEX=refresh` re-records every page (a new frozen day); review and commit tests/index/.
In the default mode (`replay`) a missing page or metadata file is a 404 that names this file, and the
resolver's error says which project was asked for.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import urllib.parse
import urllib.request
import zipfile
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from check_release_table import Http, RangeFile  # noqa: E402  (the maintainers' reader of remote wheels)

DATA = Path(__file__).resolve().parent / "index"
UPSTREAM = os.environ.get("SMENV_FREEZE_UPSTREAM", "https://pypi.org/simple")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
# What a page keeps of each file: enough for uv and pip to resolve, hash and date (PEP 691, 700).
KEEP = ("filename", "hashes", "requires-python", "upload-time", "yanked", "size")
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class FrozenIndex:
    """The frozen index's data, and (in record modes) the live index it is filled from."""

    def __init__(self, data: Path = DATA, mode: str = "replay", upstream: str = UPSTREAM):
        if mode not in ("replay", "record", "refresh"):
            raise ValueError(f"SMENV_FREEZE_INDEX={mode!r}: expected replay, record or refresh")
        self.data, self.mode, self.upstream = data, mode, upstream.rstrip("/")
        self.refreshed: set[str] = set()
        self.misses: list[str] = []
        self._lock = threading.Lock()

    # -- pages ---------------------------------------------------------------------------------------

    def page(self, project: str) -> dict | None:
        path = self.data / "simple" / f"{project}.json"
        with self._lock:
            stale = self.mode == "refresh" and project not in self.refreshed
            if (stale or not path.is_file()) and self.mode != "replay":
                self._record_page(project, path)
                self.refreshed.add(project)
        if not path.is_file():
            self.misses.append(f"simple/{project}.json")
            return None
        return json.loads(path.read_text())

    def _record_page(self, project: str, path: Path) -> None:
        request = urllib.request.Request(f"{self.upstream}/{project}/", headers={"Accept": JSON_TYPE})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                live = json.load(response)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return
            raise
        files = []
        for f in live.get("files", []):
            kept = {k: f[k] for k in KEEP if k in f}
            kept["source"] = f["url"]  # where the file itself is fetched from (Docker tests only)
            files.append(kept)
        page = {
            "meta": {"api-version": "1.1", "recorded": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
            "name": live.get("name", project),
            "versions": live.get("versions", []),
            "files": files,
        }
        _write(path, json.dumps(page, indent=0, sort_keys=True) + "\n")

    def served_page(self, project: str, base: str) -> dict | None:
        page = self.page(project)
        if page is None:
            return None
        files = []
        for f in page["files"]:
            served = {k: v for k, v in f.items() if k != "source"}
            served["url"] = f"{base}/files/{project}/{f['filename']}"
            if f["filename"].endswith(".whl"):
                served["core-metadata"] = True  # PEP 714 name; uv and pip read it
                served["data-dist-info-metadata"] = True  # PEP 658's original name
            files.append(served)
        return {"meta": {"api-version": "1.1"}, "name": page["name"], "versions": page["versions"], "files": files}

    def file(self, project: str, filename: str) -> dict | None:
        page = self.page(project)
        return next((f for f in (page or {}).get("files", []) if f["filename"] == filename), None)

    # -- metadata ------------------------------------------------------------------------------------

    def metadata(self, project: str, filename: str) -> bytes | None:
        path = self.data / "metadata" / f"{filename}.metadata"
        if not path.is_file() and self.mode != "replay":
            found = self.file(project, filename)
            if found:
                _write(path, _remote_wheel_metadata(found["source"], found["size"]).decode("utf-8"))
        if not path.is_file():
            self.misses.append(f"metadata/{filename}.metadata")
            return None
        return path.read_bytes()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _remote_wheel_metadata(url: str, size: int) -> bytes:
    """A wheel's METADATA, read with HTTP range requests (the live index here serves no .metadata files),
    through the release-table tool's reader of remote wheels."""
    try:
        with urllib.request.urlopen(url + ".metadata", timeout=60) as response:
            return response.read()
    except urllib.error.HTTPError:
        pass
    with zipfile.ZipFile(RangeFile(Http(timeout=60), url, size)) as wheel:
        names = [n for n in wheel.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if len(names) != 1:
            raise ValueError(f"{url}: expected one .dist-info/METADATA, found {names}")
        return wheel.read(names[0])


class _Handler(BaseHTTPRequestHandler):
    index: FrozenIndex  # set on the subclass made per server

    def log_message(self, *args) -> None:  # quiet: pytest shows the misses instead
        pass

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        parts = [p for p in path.split("/") if p]
        base = f"http://{self.headers.get('Host') or '127.0.0.1'}"
        if len(parts) == 2 and parts[0] == "simple":
            project = canonical(parts[1])
            if project != parts[1]:  # PEP 503: redirect to the normalized name
                return self._send(301, b"", headers={"Location": f"/simple/{project}/"})
            page = self.index.served_page(project, base) if _NAME.match(project) else None
            if page is None:
                return self._missing(f"simple/{project}.json")
            return self._send(200, json.dumps(page).encode(), JSON_TYPE, head)
        if len(parts) == 3 and parts[0] == "files" and _NAME.match(parts[1]):
            project, filename = parts[1], parts[2]
            if filename.endswith(".whl.metadata"):
                data = self.index.metadata(project, filename[: -len(".metadata")])
                if data is None:
                    return self._missing(f"metadata/{filename}")
                return self._send(200, data, "application/octet-stream", head)
            found = self.index.file(project, filename)
            if found:
                return self._send(302, b"", headers={"Location": found["source"]})
        return self._missing(path)

    def _missing(self, what: str) -> None:
        body = f"{what} is not in the frozen index (tests/index); record it with SMENV_FREEZE_INDEX=record\n"
        self._send(404, body.encode(), "text/plain")

    def _send(self, status: int, body: bytes, content_type: str = "text/plain", head: bool = False, headers=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


class FrozenIndexServer:
    """Serves a FrozenIndex on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self, index: FrozenIndex):
        handler = type("Handler", (_Handler,), {"index": index})
        self.index = index
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="frozen-index", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/simple"

    def __enter__(self) -> "FrozenIndexServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
