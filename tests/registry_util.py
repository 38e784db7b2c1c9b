"""A real container registry on 127.0.0.1 for the tests: Debian's `docker-registry` (distribution 2.8).

`Registry(workdir, user=..., password=...)` writes its config (filesystem storage under workdir, and
with a user an htpasswd file, bcrypt as distribution requires, made by apache2-utils' `htpasswd`),
starts `docker-registry serve` on a free port, waits (bounded) until /v2/ answers, and stops it on exit
whatever happened. The Docker engine talks plain HTTP to loopback registries without configuration.
`.ci/run` installs both packages; a machine without them fails these tests, never skips them.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from pypiserver_util import free_port

START_TIMEOUT_S = 30.0


class Registry:
    def __init__(self, workdir: Path, user: str | None = None, password: str | None = None):
        for tool in ("docker-registry",) + (("htpasswd",) if user else ()):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed (apt-get install docker-registry apache2-utils; .ci/run does)")
        self.workdir, self.user, self.password = workdir, user, password
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "registry.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def docker_config(self, directory: Path) -> Path:
        """A DOCKER_CONFIG directory holding this registry's credentials, as `docker login` writes them."""
        directory.mkdir(parents=True, exist_ok=True)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        (directory / "config.json").write_text(json.dumps({"auths": {self.host: {"auth": token}}}))
        return directory

    def __enter__(self) -> "Registry":
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        auth = ""
        if self.user:
            hashed = subprocess.run(["htpasswd", "-Bbn", self.user, self.password], capture_output=True, text=True, check=True)
            (self.workdir / "htpasswd").write_text(hashed.stdout)
            auth = f"auth:\n  htpasswd:\n    realm: smenv-tests\n    path: {self.workdir / 'htpasswd'}\n"
        config = self.workdir / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n{auth}"
        )
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log_path.read_text()[-500:]}")
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2)
                return self
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and self.user:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"docker-registry did not answer within {START_TIMEOUT_S:.0f} s")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tags(self, repository: str) -> list[str]:
        request = urllib.request.Request(f"http://{self.host}/v2/{repository}/tags/list")
        if self.user:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response).get("tags") or []
