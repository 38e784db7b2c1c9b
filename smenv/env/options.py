"""Checks of the options that steer resolution (--python, --as-of, --tf-version), before any work is done.

A value the user typed wrong is a usage error (exit 2) with one line naming the option and the
expected form; whether a well-formed value fits the model (a Python the release has no wheels for) is
decided later, in resolve.py, against the release table.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from smenv.errors import UsageError

_PYTHON = re.compile(r"^3\.\d{1,2}$")
_TF_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?([a-z0-9.+-]*)$")


def check_python(value: str | None) -> None:
    if value is None:
        return
    if not _PYTHON.match(value.strip()):
        raise UsageError(f"--python {value!r}: expected a CPython minor version such as 3.11")


def check_tf_version(value: str | None) -> None:
    if value is None:
        return
    if not _TF_VERSION.match(value.strip()):
        raise UsageError(f"--tf-version {value!r}: expected a TensorFlow version such as 2.15.1 or 2.15")


def parse_as_of(text: str) -> datetime:
    """--as-of as a UTC time; a bare date means the end of that day (everything uploaded on it counts)."""
    when = parse_time(text)
    if when is None:
        raise UsageError(f"--as-of {text!r}: expected a date (YYYY-MM-DD) or an ISO 8601 time (2024-03-08T12:00:00Z)")
    return when


def parse_time(text: str) -> datetime | None:
    t = text.strip().replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(t)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    if len(t) == 10:  # a bare date means the end of that day
        when = when.replace(hour=23, minute=59, second=59)
    return when.astimezone(timezone.utc)


def check(python: str | None, as_of: str | None, tf_version: str | None) -> None:
    """Every option of ResolveOptions that the user types, checked for form: the CLI calls this first."""
    check_python(python)
    check_tf_version(tf_version)
    if as_of is not None:
        parse_as_of(as_of)
