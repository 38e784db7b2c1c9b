"""What smenv has worked out from a large host file, kept for as long as the file is unchanged.

A rebuild after a small change to a 1 GiB model must not read the gigabyte again, to hash it for the
model's digest or for its image layer. The key is what git's index uses to tell a file unchanged
without reading it (device, inode, size, modification and change times, in nanoseconds), and the
change time cannot be set back by any tool, so rewriting a file always misses. As in git ("racily
clean" entries), a file modified within the last two seconds is not cached: a second write in the
same clock tick could keep every stat field.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from smenv.user_dirs import cache_dir

MIN_BYTES = 1 << 20  # smaller files are hashed faster than the cache is read
MAX_ENTRIES = 4096
_RACY_SECONDS = 2.0


@dataclass(frozen=True)
class Stamp:
    """A file's identity and state, taken BEFORE it is read: a write during the read then misses."""

    key: str
    mtime: float


def stamp(path: Path, extra: str = "") -> Stamp | None:
    """None for a small or unreadable file (not worth caching)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_size < MIN_BYTES:
        return None
    key = f"{os.path.abspath(path)}\0{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}\0{extra}"
    return Stamp(key, st.st_mtime)


class StatCache:
    """One JSON file per kind under ~/.cache/smenv/stat/; `save()` writes it back atomically."""

    def __init__(self, kind: str, root: Path | None = None):
        self.path = (root or cache_dir("stat")) / f"{kind}.json"
        self._entries: dict[str, str] | None = None
        self._dirty = False

    def get(self, at: Stamp | None) -> str | None:
        return None if at is None else self._load().get(at.key)

    def put(self, at: Stamp | None, value: str) -> None:
        if at is None or time.time() - at.mtime < _RACY_SECONDS:
            return
        entries = self._load()
        entries.pop(at.key, None)
        entries[at.key] = value  # newest last: the oldest go first when the file is full
        self._dirty = True

    def save(self) -> None:
        if not self._dirty or self._entries is None:
            return
        entries = dict(list(self._entries.items())[-MAX_ENTRIES:])
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".stat-")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entries, f)
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache that cannot be written only costs the next run a read of the file
        self._dirty = False

    def _load(self) -> dict[str, str]:
        if self._entries is None:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self._entries = {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

