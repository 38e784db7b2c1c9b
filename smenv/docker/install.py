"""Install the lock into /opt/venv in a throw-away container, and keep the result as a reproducible layer.

No image is built and nothing is committed: on engines whose storage driver diffs the whole tree on
every commit (fuse-overlayfs: ../shared/reference/image-assembly.md) a commit of a TensorFlow
environment costs seconds, and a commit's layer carries the time it was made. Instead the wheels and
the lock are copied into a container of the base image, which runs the same commands the generated
Dockerfile runs (render.dockerfile.install_script), with no network; the engine then hands /opt/venv
back as a tar, which layers.normalize_archive makes reproducible.
"""

from __future__ import annotations

import tarfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import docker.errors
import requests.exceptions

from smenv.docker.engine import THROWAWAY_LABEL, is_read_timeout
from smenv.docker.layers import TAR_END, Layer, file_chunks, normalize_archive, tar_member, tar_padding
from smenv.errors import BuildFailed, DockerError

if TYPE_CHECKING:
    from smenv.docker.engine import Engine

STAGING = "/tmp/smenv"  # where the lock and the wheels are put in the container (the Dockerfile's too)
VENV = "/opt/venv"


def install_layer(
    engine: "Engine",
    base_image: str,
    script: str,
    lock_text: str,
    wheel_files: Sequence[Path] | None,
    out: Path,
    log_path: Path,
    *,
    env: Sequence[tuple[str, str]] = (),
    network: bool = False,
    timeout_s: float = 3600.0,
    progress: Callable[[str], None] = lambda message: None,
) -> Layer:
    """Run `script` (the Dockerfile's install commands) in a container of `base_image`; /opt/venv as a layer.

    The container has no network unless `network` (--online installs from the index); it is removed
    whatever happens, Ctrl-C included. A failing install raises BuildFailed with pip's last lines and
    the log's path, as a failing `docker build` step does.
    """
    container = None
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with engine._calls(f"docker run {base_image} (install the lock)"):
            host_config = engine.client.api.create_host_config(**({} if network else {"network_mode": "none"}))
            container = engine.client.api.create_container(
                base_image, ["/bin/sh", "-c", script], user="0:0", environment=[f"{k}={v}" for k, v in env],
                labels={THROWAWAY_LABEL: "1"}, host_config=host_config,
            )["Id"]
            progress(f"copying the lock and {len(wheel_files or ())} wheels into the install container")
            engine.client.api.put_archive(container, "/", _staging_tar(lock_text, wheel_files))
            progress("installing the locked packages (pip, no network)" if not network else "installing the locked packages (pip)")
            started = time.monotonic()
            try:
                engine.client.api.start(container)
            except docker.errors.APIError as exc:  # the base cannot run the script: no /bin/sh, no python3
                reason = " ".join(str(exc.explanation or exc).split())
                with open(log_path, "a", encoding="utf-8") as log:
                    log.write(f"# install into {VENV} on {base_image}: the container did not start\n{reason}\n")
                raise BuildFailed(f"installing the locked packages failed: the base image {base_image[:19]} cannot run "
                                  f"/bin/sh ({reason[-200:]}) (full log: {log_path})", str(log_path), (reason,)) from exc
            try:
                status = engine.client.api.wait(container, timeout=timeout_s)
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
                if not is_read_timeout(exc):
                    raise  # the engine went away: _calls says so (exit 6)
                raise DockerError(f"installing the lock took longer than {timeout_s:.0f} s; stopped") from exc
            output = engine.client.api.logs(container, stdout=True, stderr=True).decode("utf-8", "replace")
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"# install into {VENV} on {base_image} ({time.monotonic() - started:.1f} s)\n{output}")
        code = int(status.get("StatusCode", -1))
        if code != 0:
            tail = tuple(line for line in output.splitlines() if line.strip())[-15:]
            # pip's own verdict ("ERROR: ..."), not a warning printed after it
            last = next((line for line in reversed(tail) if line.startswith("ERROR")), tail[-1] if tail else f"exit status {code}")
            raise BuildFailed(f"installing the locked packages failed: {last} (full log: {log_path})", str(log_path), tail)
        progress(f"taking {VENV} out of the install container as a layer")
        with engine._calls(f"docker cp {VENV}"):
            stream, _ = engine.client.api.get_archive(container, VENV, chunk_size=1 << 20)
            return normalize_archive(stream, out, prefix="opt")
    finally:
        if container is not None:
            try:
                engine.client.api.remove_container(container, force=True)
            except (docker.errors.DockerException, requests.exceptions.RequestException):
                pass


def _staging_tar(lock_text: str, wheel_files: Sequence[Path] | None) -> Iterator[bytes]:
    """tmp/smenv/requirements.lock and tmp/smenv/wheels/*, as put_archive wants them: a tar streamed in
    chunks (wheels are hundreds of megabytes; none is held in memory whole)."""
    root = STAGING.strip("/")
    for name in (root.split("/")[0], root, f"{root}/wheels"):
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        yield info.tobuf(tarfile.PAX_FORMAT)
    data = lock_text.encode()
    yield tar_member(f"{root}/requirements.lock", len(data)) + data + tar_padding(len(data))
    for wheel in sorted(wheel_files or ()):
        size = wheel.stat().st_size
        yield tar_member(f"{root}/wheels/{wheel.name}", size)
        yield from file_chunks(wheel)
        yield tar_padding(size)
    yield TAR_END
