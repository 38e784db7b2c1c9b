"""The Docker engine behind the few operations smenv needs.

`connect()` finds the engine the way the docker CLI does (DOCKER_HOST, else DOCKER_CONTEXT, else the
current context in ~/.docker/config.json, else the local socket), pings it with a short timeout and
returns an `Engine`. Every Docker failure leaves this module as a typed error: `DockerUnavailable` when
the engine cannot be reached, `DockerError` when it refuses an operation. Nothing here prints.

To add an operation, write a small method whose SDK calls run inside `with self._calls("docker WHAT"):`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions
from docker.tls import TLSConfig
from docker.utils import kwargs_from_env, parse_repository_tag

from smenv.errors import BuildFailed, DockerError, DockerUnavailable, RegistryError

if TYPE_CHECKING:
    from smenv.docker.layers import Layer

DEFAULT_HOST = "unix:///var/run/docker.sock"
PING_TIMEOUT = 5.0  # seconds: an engine that is up answers a ping in milliseconds
CALL_TIMEOUT = 120.0  # seconds, for ordinary calls; uploads and waits set their own
# `docker load` answers only once the engine has registered every layer: for a dependency layer of a
# GiB or more on a busy fuse-overlayfs, that silence outlasted CALL_TIMEOUT (make corpus, 2026-12-01).
LOAD_TIMEOUT = 1800.0
MODEL_LABEL = "org.smenv.model.digest"  # on every image smenv makes for a model (render.dockerfile.image_labels)
THROWAWAY_LABEL = "org.smenv.throwaway"  # on containers smenv starts and removes, so leftovers can be found
# On `smenv serve`'s container instead: it is the user's (with --detach it outlives smenv), so a cleanup
# of throw-away containers must not stop it. Its value is the image served.
SERVE_LABEL = "org.smenv.serve"


@dataclass(frozen=True)
class Endpoint:
    host: str  # as the docker CLI writes it: unix:///var/run/docker.sock, tcp://host:2376, ssh://user@host
    source: str  # "DOCKER_HOST", "context NAME" or "default": said in error messages
    tls: TLSConfig | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ImageInfo:
    id: str  # sha256:...
    tags: tuple[str, ...]
    size_bytes: int
    labels: dict[str, str]
    created: str  # ISO 8601, as the engine reports it
    env: tuple[str, ...] = ()
    cmd: tuple[str, ...] | None = None
    diff_ids: tuple[str, ...] = ()  # its layers, bottom first (RootFS.Layers)
    architecture: str = ""
    os: str = ""
    config: Mapping = field(default_factory=dict)  # the image config's `config` section, as the engine has it


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    tag: str
    seconds: float
    steps: int
    cached_steps: int


@dataclass(frozen=True)
class Sandbox:
    """Limits for a container that runs model code: nothing it does may reach the host or the network."""

    memory: str = "4g"
    timeout_s: float = 600.0
    pids: int = 512
    gpu: bool = False
    mounts: tuple[tuple[str, str], ...] = ()  # (host path, container path), read-only
    cpu_seconds: int = 0  # RLIMIT_CPU for every process (0: none); wall time is timeout_s


@dataclass(frozen=True)
class SandboxRun:
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool
    oom_killed: bool
    seconds: float


class Service:
    """A container running the image's own command (Engine.start_service); removed on leaving `with`."""

    def __init__(self, engine: Engine, container):
        self.engine, self.container = engine, container

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def exec(self, command: Sequence[str]) -> tuple[int, str]:
        """`docker exec` as the container's user: (exit code, stdout and stderr)."""
        with self.engine._calls("docker exec"):
            code, output = self.container.exec_run(list(command), demux=False)
        return int(code if code is not None else -1), (output or b"").decode("utf-8", "replace")

    def state(self) -> dict:
        """The container's State: Running, ExitCode, OOMKilled, Health."""
        with self.engine._calls("docker inspect"):
            self.container.reload()
        return self.container.attrs.get("State") or {}

    def logs(self) -> str:
        with self.engine._calls("docker logs"):
            return self.container.logs(stdout=True, stderr=True).decode("utf-8", "replace")

    def stop(self, timeout: int = 10) -> int | None:
        """`docker stop`: SIGTERM, then SIGKILL after `timeout` s; the exit code."""
        with self.engine._calls("docker stop"):
            self.container.stop(timeout=timeout)
            return self.container.wait(timeout=timeout + 5).get("StatusCode")

    def remove(self) -> None:
        try:
            self.container.remove(force=True)
        except docker.errors.DockerException:
            pass


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    output: str  # stdout and stderr, interleaved as the engine logged them
    container_id: str  # already removed; for logs and tests


def resolve_endpoint(environ: Mapping[str, str] | None = None) -> Endpoint:
    """Where the engine is: DOCKER_HOST, else DOCKER_CONTEXT or config.json's currentContext, else the local socket.

    docker-py 7.1 ignores Docker contexts (7.2 added them to from_env); reading them here keeps
    the behaviour the same on both, and lets error messages say where the endpoint came from.
    """
    env = os.environ if environ is None else environ
    if env.get("DOCKER_HOST"):
        params = kwargs_from_env(environment=dict(env))
        return Endpoint(params["base_url"], "DOCKER_HOST", params.get("tls"))
    config_dir = Path(env.get("DOCKER_CONFIG") or Path(env.get("HOME") or Path.home()) / ".docker")
    name = env.get("DOCKER_CONTEXT") or _current_context_name(config_dir)
    if not name or name == "default":
        return Endpoint(DEFAULT_HOST, "default")
    return _context_endpoint(config_dir, name)


def connect(environ: Mapping[str, str] | None = None, timeout: float = PING_TIMEOUT) -> Engine:
    """An `Engine` for the resolved endpoint, after a ping; `DockerUnavailable` if it does not answer."""
    endpoint = resolve_endpoint(environ)
    try:
        # version=None makes the client ask the engine for its API version at once: that is the ping,
        # and it settles the API version with 20.10 engines that are older than the SDK's default.
        client = docker.DockerClient(
            base_url=endpoint.host,
            tls=endpoint.tls or False,
            version=None,
            timeout=timeout,
            use_ssh_client=endpoint.host.startswith("ssh://"),  # the ssh binary, not paramiko (not installed)
        )
        version = client.version()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise DockerUnavailable(_unreachable_message(endpoint, exc)) from exc
    client.api.timeout = CALL_TIMEOUT
    return Engine(client, endpoint, version)


class Engine:
    """The local (or DOCKER_HOST) Docker engine; create it with `connect()`.

    It implements smenv.docker.interface.ContainerEngine, what the pipeline needs of an engine.
    """

    def __init__(self, client: docker.DockerClient, endpoint: Endpoint, version: Mapping):
        self.client = client  # for operations not wrapped yet; prefer adding a method here
        self.endpoint = endpoint
        self.server_version: str = version.get("Version", "?")
        self.api_version: str = version.get("ApiVersion", "?")
        self.os: str = version.get("Os", "linux")
        self.arch: str = version.get("Arch", "?")  # Go's names: amd64, arm64, ...

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- images ---------------------------------------------------------------------------------------

    def image_info(self, ref: str) -> ImageInfo | None:
        """The image a tag or id names, or None when the engine has no such image."""
        with self._calls(f"docker image inspect {ref}"):
            try:
                data = self.client.api.inspect_image(ref)
            except docker.errors.ImageNotFound:
                return None
        config = data.get("Config") or {}
        return ImageInfo(
            id=data["Id"],
            tags=tuple(data.get("RepoTags") or ()),
            size_bytes=int(data.get("Size") or 0),
            labels=dict(config.get("Labels") or {}),
            created=data.get("Created", ""),
            env=tuple(config.get("Env") or ()),
            cmd=tuple(config["Cmd"]) if config.get("Cmd") else None,
            diff_ids=tuple((data.get("RootFS") or {}).get("Layers") or ()),
            architecture=data.get("Architecture", ""),
            os=data.get("Os", ""),
            config=config,
        )

    def image_exists(self, ref: str) -> bool:
        return self.image_info(ref) is not None

    def has_layers(self, diff_ids: Sequence[str]) -> bool:
        """Whether an smenv model image on the engine starts with these layers, so that a load of an
        image on top of them needs none of their files. The engine has no call that asks for a layer
        chain, so this looks at the layers of its smenv model images (the newest 64)."""
        wanted = tuple(diff_ids)
        with self._calls("docker image ls"):
            images = self.client.api.images(filters={"label": MODEL_LABEL})
        for image in sorted(images, key=lambda i: -int(i.get("Created") or 0))[:64]:
            info = self.image_info(image["Id"])
            if info is not None and info.diff_ids[:len(wanted)] == wanted:
                return True
        return False

    def remove_image(self, ref: str, force: bool = False) -> bool:
        """Remove an image by tag or id; False when there was none. An image in use is a DockerError."""
        with self._calls(f"docker rmi {ref}"):
            try:
                self.client.api.remove_image(ref, force=force)
            except docker.errors.ImageNotFound:
                return False
        return True

    def load(self, archive: Iterable[bytes], what: str) -> list[str]:
        """`docker load` of a streamed archive (assemble.docker_archive); the images it loaded."""
        loaded: list[str] = []
        with self._timeout_at_least(LOAD_TIMEOUT), self._calls(f"docker load ({what})"):
            for message in self.client.api.load_image(archive):
                detail = _stream_error(message)
                if detail is not None:
                    raise DockerError(f"docker load ({what}): {_one_line(detail)}")
                text = message.get("stream", "")
                if text.startswith("Loaded image"):
                    loaded.append(text.split(":", 1)[1].strip())
        return loaded

    def save(self, ref: str) -> Iterator[bytes]:
        """`docker save REF`: the image as a docker-archive, streamed."""
        with self._calls(f"docker save {ref}"):
            yield from self.client.api.get_image(ref, chunk_size=1 << 20)

    def push(self, tag: str, progress: Callable[[str], None] = lambda message: None) -> str:
        """`docker push TAG` with the engine's credentials (docker config, credential helpers); the digest.

        The SDK reads the same config.json (DOCKER_CONFIG) and credential helpers the docker CLI does, and
        sends the credentials in a request header to the engine only: never to a log or a layer.
        """
        repository, version = parse_repository_tag(tag)
        digest = ""
        with self._registry_calls(f"docker push {tag}", repository):
            for message in self.client.api.push(repository, tag=version or "latest", stream=True, decode=True):
                detail = _stream_error(message)
                if detail is not None:
                    raise RegistryError(f"docker push {tag}: {_registry_message(detail, repository)}")
                aux = message.get("aux")  # raw JSON the engine passes through: anything, null included
                if isinstance(aux, dict) and isinstance(aux.get("Digest"), str) and aux["Digest"]:
                    digest = aux["Digest"]
                elif message.get("status") and message.get("id"):
                    progress(f"push {message['id']}: {message['status']}")
        return digest

    def pull(self, ref: str, progress: Callable[[str], None] = lambda message: None,
             timeout: float | None = None) -> bool:
        """`docker pull REF`; False when the registry has no such image (any other failure raises).

        With `timeout`, a pull still running after that many seconds is abandoned (its connection closed,
        which makes the engine cancel it) and raises RegistryError: the SDK's pull has no time limit.
        """
        import queue
        import threading

        repository, version = parse_repository_tag(ref)
        messages: queue.Queue = queue.Queue()
        opened: list = []

        def read() -> None:  # in a thread, so a silent registry cannot hold the caller past `timeout`
            try:
                stream = self.client.api.pull(repository, tag=version or "latest", stream=True, decode=True)
                opened.append(stream)
                for message in stream:
                    messages.put(("message", message))
                messages.put(("done", None))
            except BaseException as exc:  # handed to the caller, which raises it as a typed error
                messages.put(("error", exc))

        deadline = None if timeout is None else time.monotonic() + timeout
        shown: dict[str, str] = {}
        threading.Thread(target=read, name=f"docker pull {ref}", daemon=True).start()
        with self._registry_calls(f"docker pull {ref}", repository):
            try:
                while True:
                    try:
                        left = None if deadline is None else max(0.0, deadline - time.monotonic())
                        kind, item = messages.get(timeout=left)
                    except queue.Empty:
                        if opened:
                            _hang_up(opened[0])
                        raise RegistryError(f"docker pull {ref}: not finished within {timeout:.0f} s, abandoned") from None
                    if kind == "done":
                        return True
                    if kind == "error":
                        raise item
                    detail = _stream_error(item)
                    if detail is not None:
                        if _NOT_FOUND.search(detail):
                            return False
                        raise RegistryError(f"docker pull {ref}: {_registry_message(detail, repository)}")
                    if item.get("status") and item.get("id") and shown.get(item["id"]) != item["status"]:
                        shown[item["id"]] = item["status"]  # once per layer and state, not per chunk
                        progress(f"pull {ref} {item['id']}: {item['status']}")
            except docker.errors.NotFound:
                return False
            except docker.errors.APIError as exc:
                if _NOT_FOUND.search(str(exc.explanation or exc)):
                    return False
                raise RegistryError(f"docker pull {ref}: {_registry_message(str(exc.explanation or exc), repository)}") from exc

    def registry_has(self, ref: str) -> bool:
        """Whether the registry REF names holds that image (its manifest, asked through the engine)."""
        with self._registry_calls(f"docker manifest inspect {ref}", ref):
            try:
                self.client.api.inspect_distribution(ref)
            except docker.errors.NotFound:
                return False
            except docker.errors.APIError as exc:
                if _NOT_FOUND.search(str(exc.explanation or exc)):
                    return False
                raise RegistryError(f"asking for {ref}: {_registry_message(str(exc.explanation or exc), ref)}") from exc
        return True

    def tag_image(self, ref: str, tag: str) -> None:
        """Point `tag` (repository[:tag]) at the image `ref` names."""
        repository, version = parse_repository_tag(tag)
        with self._calls(f"docker tag {ref} {tag}"):
            self.client.api.tag(ref, repository, version or "latest")

    def import_rootfs(
        self,
        tar_path: str | Path,
        tag: str,
        changes: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
    ) -> ImageInfo:
        """`docker import TAR TAG` with Dockerfile-style changes (ENV, CMD, ...) and labels; the new image."""
        tar_path = Path(tar_path)
        if not tar_path.is_file():
            # The SDK would send a path it cannot open to the engine as a URL to download.
            raise DockerError(f"docker import: no such tarball {tar_path}")
        repository, version = parse_repository_tag(tag)
        all_changes = list(changes) + [f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in (labels or {}).items()]
        with self._calls(f"docker import {tar_path.name} {tag}"):
            # A path (not an open file) makes the SDK upload with no read timeout: big roots take a while.
            answer = self.client.api.import_image(
                src=str(tar_path), repository=repository, tag=version or "latest", changes=all_changes
            )
        image_id = _import_result(answer)
        info = self.image_info(image_id)
        if info is None:
            raise DockerError(f"docker import {tag}: the engine reported {image_id} but has no such image")
        return info

    # -- containers -----------------------------------------------------------------------------------

    def run_throwaway(
        self, image: str, command: Sequence[str], network: str = "none", timeout: float = 300.0
    ) -> RunResult:
        """Run `command` in a new container of `image`, wait for it, return its exit code and output, remove it.

        For checks (does python3 -m venv work?), not for long-lived services: no ports, no volumes.
        """
        with self._calls(f"docker run {image}"):
            container = self.client.containers.create(
                image, list(command), network_mode=network, labels={THROWAWAY_LABEL: "1"}
            )
            try:
                container.start()
                try:
                    status = container.wait(timeout=timeout)
                except requests.exceptions.ReadTimeout as exc:
                    raise DockerError(f"docker run {image}: still running after {timeout:.0f} s, stopped") from exc
                output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
            finally:
                container.remove(force=True)
        return RunResult(int(status.get("StatusCode", -1)), output, container.id)

    def build(
        self,
        context: Path,
        tag: str,
        log_path: Path,
        target: str | None = None,
        progress: Callable[[str], None] = lambda message: None,
    ) -> BuildResult:
        """`docker build` through the Engine API, streaming every line to `log_path`.

        The SDK speaks to the classic builder (docker-py has no BuildKit), which the generated
        Dockerfiles are written for. A failed or interrupted build leaves no container (forcerm)
        and no dangling image behind.
        """
        import time

        before = self._image_ids()
        started = time.monotonic()
        tail: list[str] = []
        step, steps, cached = "", 0, 0
        own: list[str] = []  # short ids of the step images this build reported (" ---> 0123456789ab")
        step_is_from = False
        stream = None
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(log_path, "a", encoding="utf-8") as log, self._calls(f"docker build {context}"):
                log.write(f"# docker build -t {tag}{' --target ' + target if target else ''} {context}\n")
                stream = self.client.api.build(
                    path=str(context), tag=tag, target=target, rm=True, forcerm=True, pull=False, decode=True,
                )
                for chunk in stream:
                    if "error" in chunk:
                        message = _one_line(chunk.get("errorDetail", {}).get("message") or chunk["error"])
                        log.write(f"ERROR: {chunk['error']}\n")
                        raise BuildFailed(
                            f"docker build failed at {step or 'the start'}: {message} (full log: {log_path})",
                            str(log_path), tuple(tail[-15:]),
                        )
                    text = chunk.get("stream") or chunk.get("status") or ""
                    if not text:
                        continue
                    log.write(text if text.endswith("\n") else text + "\n")
                    for line in text.splitlines():
                        line = line.rstrip()
                        if not line:
                            continue
                        tail.append(line)
                        del tail[:-40]
                        if _STEP_IMAGE.match(line) and not step_is_from:  # a FROM's image is the base, not ours
                            own.append(_STEP_IMAGE.match(line).group(1))
                        if line.startswith("Step "):
                            step_is_from = " : FROM " in line.upper()
                            step, steps = line.split(" : ")[0], steps + 1
                            progress(f"{step}: {line.split(' : ', 1)[-1][:70]}")
                        elif "Using cache" in line:
                            cached += 1
        except BaseException:
            # Failure or Ctrl-C: leave nothing behind. On Ctrl-C the engine is still running the step:
            # hang up first (the classic builder cancels the build when its client goes away, killing
            # and removing the step's container), else the step's image is "in use" and cannot be
            # removed, and intermediate images were left behind (found by tests/test_faults.py).
            _hang_up(stream)
            self._remove_build_images(before, own)
            raise
        info = self.image_info(tag)
        if info is None:
            raise BuildFailed(f"docker build reported success but no image {tag} exists (full log: {log_path})", str(log_path))
        return BuildResult(info.id, tag, round(time.monotonic() - started, 2), steps, cached)

    def _image_ids(self) -> set[str]:
        with self._calls("docker images --all"):
            return {i["Id"] for i in self.client.api.images(all=True)}

    def _remove_build_images(self, before: set[str], own: list[str], wait_s: float = 60.0) -> None:
        """Remove the untagged images this build made; retry while a cancelled step still holds one.

        Only images this build reported, or their descendants (a step committed after the last line read),
        are candidates: removing every new dangling image, as before, could take another build's
        in-progress steps on a shared engine.
        """
        import time

        deadline = time.monotonic() + wait_s
        shorts = set(own)
        while True:
            try:
                images = self.client.api.images(all=True)
            except (docker.errors.DockerException, requests.exceptions.RequestException):
                return
            parent = {i["Id"]: i.get("ParentId") or "" for i in images}
            untagged = {i["Id"] for i in images if not [t for t in i.get("RepoTags") or () if t != "<none>:<none>"]}

            def ours(image_id: str) -> bool:
                for _ in range(500):  # a chain of steps, not a cycle
                    if not image_id or (image_id in before and image_id[7:19] not in shorts):
                        return False
                    if image_id[7:19] in shorts:
                        return True
                    image_id = parent.get(image_id, "")
                return False

            leftovers = {i for i in untagged - before if ours(i)}
            if not leftovers:
                return
            children = {parent[i] for i in parent}
            for image_id in sorted(leftovers, key=lambda i: i in children):  # leaves first: they prune their parents
                try:
                    self.client.api.remove_image(image_id, force=True)
                except docker.errors.APIError:
                    pass  # gone already, or still used by the cancelled step's container: retried below
            if time.monotonic() > deadline:
                return
            time.sleep(0.5)

    def install_layer(
        self,
        base_image: str,
        script: str,
        lock_text: str,
        wheel_files: Sequence[Path] | None,
        out: Path,
        log_path: Path,
        *,
        env: Sequence[tuple[str, str]] = (),
        network: bool = False,
        progress: Callable[[str], None] = lambda message: None,
    ) -> Layer:
        """Run the install `script` in a throw-away container of `base_image`; /opt/venv as a layer file
        (docker/install.py: no commit, no network unless asked, the container removed whatever happens)."""
        from smenv.docker.install import install_layer

        return install_layer(self, base_image, script, lock_text, wheel_files, out, log_path, env=env,
                             network=network, progress=progress)

    def read_file(self, image: str, path: str, limit: int = 16 << 20) -> bytes:
        """One file from an image, read from a created (never started) container."""
        import io
        import tarfile

        container = None
        try:
            with self._calls(f"docker cp {image}:{path}"):
                container = self.client.containers.create(image, labels={THROWAWAY_LABEL: "1"})
                stream, _ = container.get_archive(path)
                data = b"".join(stream)
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                member = tar.next()
                if member is None or not member.isfile() or member.size > limit:
                    raise DockerError(f"{image}:{path} is not a readable file")
                return tar.extractfile(member).read()
        finally:
            if container is not None:
                try:
                    container.remove(force=True)
                except docker.errors.DockerException:
                    pass

    def run_sandboxed(self, image: str, command: Sequence[str], sandbox: Sandbox) -> SandboxRun:
        """Run model code: no network, read-only root, unprivileged, no capabilities, memory/pid/time limits.

        The container is removed whatever happens, Ctrl-C included.
        """
        run, _ = self._run_in_sandbox(image, command, sandbox)
        return run

    def run_sandboxed_with_files(self, image: str, command: Sequence[str], sandbox: Sandbox,
                                 files: Iterable[bytes], take: str, take_limit: int = 256 << 20) -> tuple[SandboxRun, bytes | None]:
        """As run_sandboxed, with `files` (a tar stream) put in before the start and the directory `take`
        handed back as a tar afterwards (None when the command failed or left nothing there).

        Used to build an sdist into a wheel (env/sdist_build.py). The root file system stays writable
        here, the container's own throw-away layer only: the engine refuses put_archive into a read-only
        root, and a tmpfs would be gone when the container exits, before get_archive can read it.
        """
        return self._run_in_sandbox(image, command, sandbox, files, take, take_limit)

    def _run_in_sandbox(self, image: str, command: Sequence[str], sandbox: Sandbox, files: Iterable[bytes] | None = None,
                        take: str | None = None, take_limit: int = 0) -> tuple[SandboxRun, bytes | None]:
        import time

        from docker.types import DeviceRequest, Mount, Ulimit

        kwargs = dict(
            network_mode="none",
            read_only=files is None,
            user="10001:10001",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=sandbox.memory,
            memswap_limit=sandbox.memory,  # no swap: an out-of-memory model fails fast, visibly
            pids_limit=sandbox.pids,
            tmpfs={"/tmp": "rw,size=256m", "/home/smenv": "rw,size=64m"},
            labels={THROWAWAY_LABEL: "1"},
            mounts=[Mount(target=c, source=h, type="bind", read_only=True) for h, c in sandbox.mounts],
        )
        if sandbox.cpu_seconds:
            kwargs["ulimits"] = [Ulimit(name="cpu", soft=sandbox.cpu_seconds, hard=sandbox.cpu_seconds)]
        if sandbox.gpu:
            kwargs["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
        container = None
        taken = None
        started = time.monotonic()
        try:
            with self._calls(f"docker run {image}"):
                container = self.client.containers.create(image, list(command), **kwargs)
                if files is not None:
                    self.client.api.put_archive(container.id, "/", files)
                container.start()
                timed_out = False
                try:
                    status = container.wait(timeout=sandbox.timeout_s)
                    code = int(status.get("StatusCode", -1))
                except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
                    if not is_read_timeout(exc):
                        raise  # the engine went away, not the time limit: _calls says so (exit 6)
                    timed_out, code = True, None
                    container.kill()
                seconds = time.monotonic() - started
                stdout = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
                stderr = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
                container.reload()
                oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
                if take and code == 0:
                    try:
                        stream, _ = container.get_archive(take)
                    except docker.errors.NotFound:
                        stream = ()
                    chunks, size = [], 0
                    for chunk in stream:
                        size += len(chunk)
                        if size > take_limit:
                            raise DockerError(f"{take} in the sandbox holds more than {take_limit >> 20} MiB")
                        chunks.append(chunk)
                    taken = b"".join(chunks) or None
            return SandboxRun(code, stdout, stderr, timed_out, oom, round(seconds, 2)), taken
        finally:
            if container is not None:
                try:
                    container.remove(force=True)
                except docker.errors.DockerException:
                    pass

    def start_service(self, image: str, sandbox: Sandbox, env: Sequence[tuple[str, str]] = (), publish: int | None = None,
                      name: str | None = None) -> Service:
        """Start the image's own command as production runs it, detached: its own user (non-root), a
        read-only root with a tmpfs /tmp only, no capabilities, no-new-privileges, memory and PID limits,
        and no network at all (`--network none`: the check talks to it with `docker exec` from inside,
        so no port is published and nothing it does can leave the container). Stop and remove it with
        the Service (a context manager). `publish`: instead, the default network with the server's port
        published on 127.0.0.1:publish only, and the user's container (`smenv serve`, SERVE_LABEL, not
        a throw-away one); `name`: the container's name."""
        from docker.types import Mount

        from smenv.render.runtime_files import PORT

        network = {"ports": {f"{PORT}/tcp": ("127.0.0.1", publish)}} if publish else {"network_mode": "none"}
        kwargs = dict(
            **network,
            name=name,
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=sandbox.memory,
            memswap_limit=sandbox.memory,
            pids_limit=sandbox.pids,
            tmpfs={"/tmp": "rw,size=256m"},
            labels={SERVE_LABEL: image} if publish else {THROWAWAY_LABEL: "1"},
            environment=[f"{k}={v}" for k, v in env],
            mounts=[Mount(target=c, source=h, type="bind", read_only=True) for h, c in sandbox.mounts],
        )
        with self._calls(f"docker run {image}"):
            container = self.client.containers.create(image, **kwargs)
            service = Service(self, container)
            try:
                container.start()
            except BaseException:
                service.remove()
                raise
        return service

    @contextmanager
    def _timeout_at_least(self, seconds: float) -> Iterator[None]:
        """The SDK reads its timeout when a request is made: raise it for the calls made inside."""
        before = self.client.api.timeout
        self.client.api.timeout = max(before, seconds)
        try:
            yield
        finally:
            self.client.api.timeout = before

    # -- errors ---------------------------------------------------------------------------------------

    @contextmanager
    def _registry_calls(self, what: str, repository: str) -> Iterator[None]:
        """`_calls`, where a silence is the registry's: the engine waits on a registry that stopped answering
        and sends nothing, so the read times out here. That is a registry failure (exit 12), not the engine's."""
        with self._calls(what):
            try:
                yield
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError,
                    urllib3.exceptions.ReadTimeoutError) as exc:
                if not is_read_timeout(exc):
                    raise
                registry = repository.split("/", 1)[0] if "/" in repository else "docker.io"
                raise RegistryError(
                    f"{what}: nothing from the registry {registry} for {self.client.api.timeout:.0f} s "
                    "(is it up and reachable from the Docker engine? then try again)"
                ) from exc

    @contextmanager
    def _calls(self, what: str) -> Iterator[None]:
        """Turn the SDK's exceptions into smenv's typed errors, one line each, naming the operation."""
        try:
            yield
        except docker.errors.APIError as exc:
            raise DockerError(f"{what}: {_one_line(exc.explanation or str(exc))}") from exc
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                urllib3.exceptions.ProtocolError) as exc:  # urllib3's own: a streamed answer (push, pull, save) cut off
            if is_read_timeout(exc):  # over a unix socket a read timeout comes as a ConnectionError
                waited = self.client.api.timeout
                raise DockerError(f"{what}: no answer from the Docker engine within {waited:.0f} s") from exc
            raise DockerUnavailable(
                f"{what}: lost the connection to the Docker engine at {self.endpoint.host} "
                "(did the daemon stop or restart? run the command again once `docker info` answers)"
            ) from exc
        except (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError) as exc:
            # A streamed answer is read through urllib3 directly: its timeout is not wrapped by requests.
            waited = self.client.api.timeout
            raise DockerError(f"{what}: no answer from the Docker engine within {waited:.0f} s") from exc
        except docker.errors.DockerException as exc:
            raise DockerError(f"{what}: {_one_line(str(exc))}") from exc


def is_read_timeout(exc: BaseException) -> bool:
    """Whether a failed wait ran out of time rather than lost its connection. Over a unix socket, requests
    reports a read timeout as a ConnectionError ("Read timed out."); a closed connection says otherwise
    ("Connection aborted", "RemoteDisconnected"), and must not be taken for a time limit."""
    timeouts = (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError)
    return isinstance(exc, timeouts) or "read timed out" in str(exc).lower()


def _current_context_name(config_dir: Path) -> str | None:
    try:
        return json.loads((config_dir / "config.json").read_text()).get("currentContext")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DockerUnavailable(f"cannot read {config_dir / 'config.json'}: {_one_line(str(exc))}") from exc


def _context_endpoint(config_dir: Path, name: str) -> Endpoint:
    # The docker CLI stores each context under the sha256 of its name.
    context_id = hashlib.sha256(name.encode()).hexdigest()
    meta_file = config_dir / "contexts" / "meta" / context_id / "meta.json"
    try:
        meta = json.loads(meta_file.read_text())
        docker_endpoint = meta["Endpoints"]["docker"]
    except FileNotFoundError:
        raise DockerUnavailable(
            f"the current Docker context {name!r} does not exist (`docker context use default`, or set DOCKER_HOST)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DockerUnavailable(f"cannot read Docker context {name!r} from {meta_file}: {_one_line(str(exc))}") from exc
    host = docker_endpoint.get("Host") or DEFAULT_HOST
    tls_dir = config_dir / "contexts" / "tls" / context_id / "docker"
    tls = None
    if tls_dir.is_dir():
        ca, cert, key = (tls_dir / n for n in ("ca.pem", "cert.pem", "key.pem"))
        tls = TLSConfig(
            client_cert=(str(cert), str(key)) if cert.is_file() and key.is_file() else None,
            ca_cert=str(ca) if ca.is_file() else None,
            verify=not docker_endpoint.get("SkipTLSVerify", False),
        )
    return Endpoint(host, f"context {name}", tls)


def _unreachable_message(endpoint: Endpoint, exc: BaseException) -> str:
    text = _chain_text(exc)
    if "Permission denied" in text:
        return (
            f"permission denied on the Docker socket {endpoint.host} "
            "(add your user to the docker group, or set DOCKER_HOST)"
        )
    if "Invalid bind address" in text or "invalid URL" in text.lower():
        return (
            f"{endpoint.host} ({endpoint.source}) is not a Docker endpoint: "
            "expected unix://PATH, tcp://HOST:PORT or ssh://USER@HOST"
        )
    where = f"cannot reach the Docker engine at {endpoint.host}"
    if "timed out" in text.lower() or "timeout" in text.lower():
        where += " (no answer within the ping timeout)"
    if endpoint.source == "DOCKER_HOST":
        return f"{where} (set by DOCKER_HOST: is the daemon running there? fix or unset DOCKER_HOST)"
    if endpoint.source.startswith("context "):
        name = endpoint.source.removeprefix("context ")
        return (
            f"{where} (Docker context {name!r}: is the daemon running? "
            "`docker context use default` or set DOCKER_HOST)"
        )
    return f"{where} (is the daemon running? set DOCKER_HOST or `docker context use`)"


def _chain_text(exc: BaseException | None) -> str:
    parts = []
    while exc is not None and len(parts) < 10:
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return " | ".join(parts)


def _import_result(answer: str) -> str:
    """The image id from `docker import`'s answer: JSON lines, the last `{"status": "sha256:..."}`.

    The engine reports some failures inside a 200 answer, as an `error` line, which the SDK does not raise.
    """
    image_id = None
    for line in answer.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("error") or message["errorDetail"].get("message", "")
            raise DockerError(f"docker import: {_one_line(detail)}")
        status = message.get("status", "")
        if status.startswith("sha256:"):
            image_id = status
    if image_id is None:
        raise DockerError(f"docker import: no image id in the engine's answer: {_one_line(answer)[:200]}")
    return image_id


def _stream_error(message: Mapping) -> str | None:
    """The error in one message of the engine's JSON stream (push, pull, load), or None.

    The engine reports these failures inside a 200 answer, which the SDK does not raise."""
    if message.get("error") or message.get("errorDetail"):
        return str(message.get("error") or (message.get("errorDetail") or {}).get("message", ""))
    return None


_NOT_FOUND = re.compile(r"manifest unknown|not found|does not exist", re.I)


def _registry_message(detail: str, repository: str) -> str:
    """The engine's registry error in one line, with what to do for the usual ones."""
    # An upload's URL carries the registry's session state (`?_state=...`): noise in a message, dropped.
    text = re.sub(r"""((?:https?://)[^\s"'?]+)\?[^\s"']*""", r"\1", _one_line(detail))
    registry = repository.split("/", 1)[0] if "/" in repository else "docker.io"
    if re.search(r"no basic auth credentials", text, re.I):
        return f"{text} (the engine has no login for {registry}: `docker login {registry}`)"
    if re.search(r"unauthorized|authentication required|denied", text, re.I):
        return f"{text} (the registry refused the credentials: `docker login {registry}`)"
    if re.search(r"connection refused|no such host|i/o timeout|dial tcp", text, re.I):
        return f"{text} (is the registry {registry} reachable from the Docker engine?)"
    if re.search(r"status:? 5\d\d\b", text, re.I):
        return f"{text} (a server error at the registry {registry}: its log says why; try again once it is fixed)"
    if re.search(r"\bEOF$|connection reset|broken pipe|use of closed network connection", text, re.I):
        return f"{text} (the registry {registry} closed the connection mid-transfer: is it up? then try again)"
    return text


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


_STEP_IMAGE = re.compile(r"^ ---> ([0-9a-f]{12})$")  # the classic builder's line naming a step's image


def _hang_up(stream) -> None:
    """Close a build's HTTP response so the engine cancels the build (the SDK returns only a generator)."""
    response = getattr(getattr(stream, "gi_frame", None), "f_locals", {}).get("response")
    try:
        if response is not None:
            response.close()
        if stream is not None:
            stream.close()
    except Exception:
        pass
