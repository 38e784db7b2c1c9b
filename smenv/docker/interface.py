"""What smenv's pipeline asks of a Docker engine: `Engine` (engine.py) is the real one, tests bring fakes.

`pipeline.build` builds images, looks them up and hands the engine to the verifier, which reads the
plan out of the image and runs the model in a sandbox. Nothing else is needed to build and verify,
so a fake that has these methods, with these signatures, stands in for the engine
(tests/test_fix_flow.py checks that both do).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from smenv.docker.engine import BuildResult, ImageInfo, Sandbox, SandboxRun


class ContainerEngine(Protocol):
    def image_info(self, ref: str) -> ImageInfo | None:
        """The image a tag or id names, or None when the engine has no such image."""
        ...

    def image_exists(self, ref: str) -> bool: ...

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
