"""Typed errors raised by the core, each with its documented exit code (the CLI contract).

The core never prints or exits: it raises one of these with a one-line message, and
`smenv.cli` turns it into `smenv: error: <path>: <message>` plus the exit code.

  1 internal error        5 unsafe model file        9 build context not written
  2 usage error           6 Docker engine error      10 base image cannot be made
  3 model not found       7 requirements.txt error   11 image build failed
  4 invalid model         8 environment cannot be resolved, locked or downloaded
  20-31 the image built but the model does not load (see smenv.verify.diagnose.KINDS); 26 (weights
        only) also when the file is read, before anything is built
  32 the model loads, but the image's own command does not serve it (smenv.verify.serving)
  130 interrupted
"""

from __future__ import annotations

from pathlib import Path


def first_line(message: BaseException | str) -> str:
    """The first line of a library's exception or message, for one-line errors (many span several).

    An exception without text gives its class name; an empty message gives "".
    """
    lines = str(message).strip().splitlines()
    if lines:
        return lines[0].strip()
    return type(message).__name__ if isinstance(message, BaseException) else ""


class SmenvError(Exception):
    """Base class. `exit_code` is part of the CLI contract (see README, "Exit codes")."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str, path: str | Path | None = None):
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def to_json(self) -> dict:
        return {"kind": self.kind, "exit_code": self.exit_code, "path": self.path, "message": self.message}


class UsageError(SmenvError):
    """A command-line argument that names no usable input."""

    exit_code = 2
    kind = "usage_error"


class SampleInputError(UsageError):
    """`--sample-input` is not a readable .npz of arrays (checked on the host, before any container runs)."""

    kind = "sample_input_error"


class ModelNotFound(SmenvError):
    """The path does not exist, or holds nothing that looks like a model."""

    exit_code = 3
    kind = "model_not_found"


class InvalidModel(SmenvError):
    """The model files exist but cannot be read: truncated, corrupt, or of an unsupported layout."""

    exit_code = 4
    kind = "invalid_model"


class UnsafeModel(InvalidModel):
    """The file tries something a model never needs: path traversal, a zip bomb."""

    exit_code = 5
    kind = "unsafe_model"


class DockerError(SmenvError):
    """The Docker engine refused or failed an operation (import, remove, run)."""

    exit_code = 6
    kind = "docker_error"


class DockerUnavailable(DockerError):
    """The Docker engine cannot be reached at the endpoint DOCKER_HOST or the current context names."""

    kind = "docker_unavailable"


class RequirementsError(SmenvError):
    """requirements.txt cannot be read, or holds a line that cannot be locked into an image."""

    exit_code = 7
    kind = "requirements_error"


class ResolutionError(SmenvError):
    """No environment satisfies the model and the requirements."""

    exit_code = 8
    kind = "resolution_error"


class WeightsOnly(SmenvError):
    """A weights-only file: no model to load without the user's code. The exit code is the one the
    verifier's diagnosis gives the same failure (smenv.verify.diagnose.KINDS["weights_only"])."""

    exit_code = 26
    kind = "weights_only"


class UnknownRelease(ResolutionError):
    kind = "unknown_release"


class ExactReleaseUnavailable(ResolutionError):
    """--exact, and the model's own TensorFlow release cannot be built on this host (no base for its Pythons)."""

    kind = "exact_release_unavailable"


class LockError(ResolutionError):
    """The resolver found no set of packages; `wheel_less` names packages with source releases only."""

    kind = "lock_conflict"

    def __init__(self, message: str, wheel_less: tuple[str, ...] = (), details: str = "", notes: tuple[str, ...] = (),
                 log_path: str | None = None):
        super().__init__(message)
        self.wheel_less = wheel_less
        self.details = details  # uv's whole explanation; the message is the short form
        self.notes = notes  # one line per Python candidate that failed
        self.log_path = log_path  # where `details` was written

    def to_json(self) -> dict:
        return {**super().to_json(), "details": self.details, "notes": list(self.notes), "log": self.log_path}


class DownloadError(ResolutionError):
    kind = "download_error"


class ContextError(SmenvError):
    """The build context cannot be written (target in the way, disk full, ...)."""

    exit_code = 9
    kind = "context_error"


class BaseImageError(SmenvError):
    """The Python base image cannot be made on this host: debootstrap failed, or its result does not work."""

    exit_code = 10
    kind = "base_image_error"


class UnsupportedPython(BaseImageError):
    """No Debian release ships the requested Python, so no base image can be built for it."""

    kind = "unsupported_python"


class DebootstrapMissing(BaseImageError):
    kind = "debootstrap_missing"


class NeedsRoot(BaseImageError):
    """debootstrap creates device nodes and chroots: only root can run it."""

    kind = "needs_root"


class BuildFailed(DockerError):
    """`docker build` failed at a step; the message names it and the full log's path."""

    exit_code = 11
    kind = "build_failed"

    def __init__(self, message: str, log_path: str | None = None, tail: tuple[str, ...] = ()):
        super().__init__(message)
        self.log_path = log_path
        self.tail = tail

    def to_json(self) -> dict:
        return {**super().to_json(), "log": self.log_path, "tail": list(self.tail)}


class SourceBuildFailed(BuildFailed):
    """A package locked as an sdist could not be built into a wheel in its sandbox (failed, out of time or
    memory, or needed the network it does not have); the message names the package and the build log."""

    exit_code = 13
    kind = "source_build_failed"


class RegistryError(DockerError):
    """A registry refused or failed a push or pull (credentials, unreachable, server error)."""

    exit_code = 12
    kind = "registry_error"


class Terminated(KeyboardInterrupt):
    """SIGTERM (`docker stop`, a CI runner's cancel, `kill`): cleaned up the way Ctrl-C is, exit 143.

    A KeyboardInterrupt, so every `except KeyboardInterrupt` cleanup (throw-away containers, partial
    output) runs for it too."""
