"""Where smenv keeps things between runs: under the XDG cache directory (~/.cache/smenv by default)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str) -> Path:
    """~/.cache/smenv/<kind> (locks, wheels, base), honouring XDG_CACHE_HOME; not created here."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "smenv" / kind
