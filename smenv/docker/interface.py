"""What smenv's pipeline asks of a Docker engine: `Engine` (engine.py) is the real one, tests bring fakes.

`pipeline.build` builds images, looks them up and hands the engine to the verifier, which reads the
plan out of the image and runs the model in a sandbox. Nothing else is needed to build and verify,
so a fake that has these methods, with these signatures, stands in for the engine
(tests/test_fix_flow.py checks that both do).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from smenv.docker.engine import BuildResult, ImageInfo, Sandbox, SandboxRun, Service
    from smenv.docker.layers import Layer


class ContainerEngine(Protocol):
    def image_info(self, ref: str) -> ImageInfo | None:
        """The image a tag or id names, or None when the engine has no such image."""
        ...

    def image_exists(self, ref: str) -> bool: ...

    def has_layers(self, diff_ids: Sequence[str]) -> bool:
        """Whether an smenv model image on the engine starts with these layers, so that a load of an
        image on top of them needs none of their files."""
        ...

    def build(
        self,
        context: Path,
        tag: str,
        log_path: Path,
        target: str | None = None,
        progress: Callable[[str], None] = lambda message: None,
    ) -> BuildResult:
        """`docker build` of `context` as `tag` (up to the stage `target`), its output appended to `log_path`."""
        ...

    def read_file(self, image: str, path: str, limit: int = 16 << 20) -> bytes:
        """One file from an image, without running it."""
        ...

    def run_sandboxed(self, image: str, command: Sequence[str], sandbox: Sandbox) -> SandboxRun:
        """Run model code in `sandbox` (no network, read-only, unprivileged, limited); the container is removed."""
        ...

    def run_sandboxed_with_files(self, image: str, command: Sequence[str], sandbox: Sandbox, files: Iterable[bytes],
                                 take: str, take_limit: int = 256 << 20) -> tuple[SandboxRun, bytes | None]:
        """run_sandboxed with `files` (a tar stream) put in first and the directory `take` handed back as a tar."""
        ...

    def start_service(self, image: str, sandbox: Sandbox, env: Sequence[tuple[str, str]] = (), publish: int | None = None,
                      name: str | None = None) -> Service:
        """Start the image's own command, detached, hardened as production runs it: no network, or with
        `publish` its port on 127.0.0.1 only."""
        ...

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
        """Run the install `script` in a throw-away container of `base_image`; /opt/venv as a layer file."""
        ...

    def load(self, archive: Iterable[bytes], what: str) -> list[str]:
        """`docker load` of a streamed archive; the images it loaded."""
        ...

    def save(self, ref: str) -> Iterator[bytes]:
        """`docker save`: the image as a docker-archive, streamed."""
        ...

    def tag_image(self, ref: str, tag: str) -> None: ...

    def remove_image(self, ref: str, force: bool = False) -> bool:
        """Remove an image or just one of its tags; False when there was none."""
        ...

    def push(self, tag: str, progress: Callable[[str], None] = lambda message: None) -> str:
        """`docker push` with the engine's credentials; the registry's digest."""
        ...

    def pull(self, ref: str, progress: Callable[[str], None] = lambda message: None,
             timeout: float | None = None) -> bool:
        """`docker pull`; False when the registry has no such image; RegistryError past `timeout` seconds."""
        ...

    def registry_has(self, ref: str) -> bool:
        """Whether the registry holds the image REF names."""
        ...
