"""Typed errors raised by the core; the CLI maps each class to its documented exit code.

The core never prints or exits: it raises one of these with a one-line message, and
`smenv.cli` turns it into `smenv: error: <path>: <message>` plus the exit code.
"""

from __future__ import annotations

from pathlib import Path


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
