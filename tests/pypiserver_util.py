"""A real package index on 127.0.0.1 that wants credentials: pypiserver in a subprocess.

`PrivateIndex(packages, user, password)` writes an htpasswd file (passlib, bcrypt-free apr1 hashes),
starts `pypiserver run -a download,list -P htpasswd` on a free port, waits (bounded) until it answers
401 without credentials and 200 with them, and stops it on exit, whatever happened. Like PyPI's
simple API it serves HTML pages, but without PEP 700 upload times, as most private indexes.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateIndex:
    def __init__(self, packages: Path, user: str, password: str, workdir: Path):
        self.packages = packages
        self.user = user
        self.password = password
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "pypiserver.log"

    @property
    def plain_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    @property
    def url(self) -> str:
        """The index URL with the credentials in it, as a requirements.txt would carry them."""
        return f"http://{self.user}:{self.password}@127.0.0.1:{self.port}/simple/"

    def __enter__(self) -> "PrivateIndex":
        import warnings

        with warnings.catch_warnings():  # passlib 1.7.4 imports the stdlib `crypt` module, deprecated in 3.11
            warnings.simplefilter("ignore", DeprecationWarning)
            from passlib.apache import HtpasswdFile

        htpasswd = self.workdir / "htpasswd"
        users = HtpasswdFile(str(htpasswd), new=True, default_scheme="apr_md5_crypt")
        users.set_password(self.user, self.password)
        users.save()
        cmd = [
            sys.executable, "-m", "pypiserver", "run", "-vv",  # -vv: each request is logged (the tests read it)
            "--host", "127.0.0.1", "--port", str(self.port),
            "--authenticate", "download,list", "--passwords", str(htpasswd),
            "--disable-fallback",  # never redirect a miss to pypi.org
            str(self.packages),
        ]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def status(self, path: str = "", auth: tuple[str, str] | None = None) -> int:
        request = urllib.request.Request(self.plain_url + path)
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        try:
            with opener.open(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pypiserver exited with {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                if self.status() == 401 and self.status(auth=(self.user, self.password)) == 200:
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.2)
        raise RuntimeError(f"pypiserver did not serve within {START_TIMEOUT_S:.0f} s ({last}): {self.log()[-2000:]}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        if getattr(self, "_log", None) is not None and not self._log.closed:
            self._log.close()
