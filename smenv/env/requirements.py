"""The training requirements.txt, parsed the way pip reads it (via pip-requirements-parser).

Honoured: comments, `-r`/`-c` includes (relative to the including file, as pip does), environment
markers, extras, `--hash`, and the index options `--index-url`, `--extra-index-url`, `--find-links`,
which carry over to locking and building. Direct URLs to wheels and local wheel files are kept.
Editable, VCS and local-directory requirements cannot be hash-locked or built without running their
build code, so they are refused with the file and line and what to do instead.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name
from pip_requirements_parser import RequirementsFile

from smenv.errors import RequirementsError, first_line



@dataclass(frozen=True)
class Requirement:
    name: str  # canonical (PEP 503) name
    text: str  # the requirement as pip would read it, without hashes
    specifier: str  # "" when unpinned
    marker: str | None
    extras: tuple[str, ...]
    file: str
    line: int
    constraint: bool = False  # from a -c file: limits versions, installs nothing
    url: str | None = None  # direct URL or local wheel path
    hashes: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def pinned_version(self) -> str | None:
        """The version of an exact `==X` pin (no wildcard), else None."""
        spec = self.specifier
        if spec.startswith("==") and "," not in spec and "*" not in spec:
            return spec[2:].strip()
        if spec.startswith("===") and "," not in spec:
            return spec[3:].strip()
        return None


@dataclass(frozen=True)
class IndexOptions:
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False

    def redacted(self) -> dict:
        """For anything written down (smenv.json, which goes into the image): no credentials."""
        return {
            "index_url": redact_url(self.index_url) if self.index_url else None,
            "extra_index_urls": [redact_url(u) for u in self.extra_index_urls],
            # A local directory by its name only: the plan must not depend on where it is on this host.
            "find_links": [redact_url(u) if "://" in u else Path(u).name for u in self.find_links],
            "no_index": self.no_index,
        }

    def merged(self, other: "IndexOptions") -> "IndexOptions":
        return IndexOptions(
            index_url=other.index_url or self.index_url,
            extra_index_urls=_unique(self.extra_index_urls + other.extra_index_urls),
            find_links=_unique(self.find_links + other.find_links),
            no_index=self.no_index or other.no_index,
        )


@dataclass(frozen=True)
class Requirements:
    requirements: tuple[Requirement, ...] = ()
    index: IndexOptions = field(default_factory=IndexOptions)
    files: tuple[str, ...] = ()

    def named(self, name: str) -> list[Requirement]:
        key = canonicalize_name(name)
        return [r for r in self.requirements if r.name == key]

    def installs(self) -> list[Requirement]:
        return [r for r in self.requirements if not r.constraint]


def parse_requirements(path: Path) -> Requirements:
    if not path.is_file():
        raise RequirementsError("requirements file not found", path)
    reqs: list[Requirement] = []
    files: list[str] = []
    # Each line's file is recorded relative to the directory of the file given (`requirements.txt:3`,
    # `common/base.txt:1`), never as the host path it was reached by: the plan goes into the image, and the
    # same inputs must give the same image from any directory or machine. Identity for cycle detection uses
    # the resolved path.
    index = _collect(path, reqs, files, constraint=False, stack=(), top=_resolve(path).parent)
    return Requirements(tuple(reqs), index, tuple(files))


def _shown(path: Path, top: Path) -> str:
    """`path` as recorded in the plan: relative to the top requirements file's directory."""
    return os.path.relpath(_resolve(path), top)


def _collect(path: Path, out: list[Requirement], files: list[str], constraint: bool, stack: tuple[Path, ...],
             top: Path) -> IndexOptions:
    if _resolve(path) in stack:
        raise RequirementsError(f"includes itself through {' -> '.join(p.name for p in stack)}", path)
    if not _is_file(path):
        raise RequirementsError("included requirements file not found", path)
    files.append(_shown(path, top))
    try:
        parsed = RequirementsFile.from_file(str(path), include_nested=False)
    except Exception as exc:  # the parser raises plain exceptions on malformed text
        raise RequirementsError(f"cannot parse: {first_line(exc)}", path) from None
    for bad in parsed.invalid_lines:
        # The parser's message repeats the line with a caret under it: keep its first line only.
        reason = first_line(bad.error_message or "")
        reason = reason.replace(": :", ":").rstrip(": ") if reason else "invalid"
        raise RequirementsError(f"line {bad.line_number}: cannot parse {bad.line.strip()!r} ({reason})", path)
    index = IndexOptions()
    for opt in parsed.options:
        o = opt.options
        at = _Line(path, opt.line_number)
        for included in o.get("requirements", []):
            index = index.merged(_collect(_include(at, included, "included file"), out, files, constraint, stack + (_resolve(path),), top))
        for included in o.get("constraints", []):
            index = index.merged(_collect(_include(at, included, "constraints file"), out, files, True, stack + (_resolve(path),), top))
        index = index.merged(
            IndexOptions(
                index_url=_url(at, o["index_url"], "index URL") if o.get("index_url") else None,
                extra_index_urls=tuple(_url(at, u, "extra index URL") for u in o.get("extra_index_urls", ())),
                find_links=tuple(_link(at, f) for f in o.get("find_links", ())),
                no_index=bool(o.get("no_index")),
            )
        )
    for req in parsed.requirements:
        out.append(_requirement(req, path, constraint, _shown(path, top)))
    return index


def _requirement(req, path: Path, constraint: bool, shown: str) -> Requirement:
    # The line as written: dumps() re-renders it and raises on PEP 440 `===` arbitrary versions (test_fuzz.py).
    line = " ".join((req.line or req.name or "").split())
    if req.is_editable:
        raise RequirementsError(
            f"line {req.line_number}: editable requirement {line!r} cannot be locked into an image; "
            "build a wheel (`pip wheel --no-deps DIR`) and list the .whl file, or pass the source with --code",
            path,
        )
    if req.is_vcs_url:
        raise RequirementsError(
            f"line {req.line_number}: VCS requirement {line!r} cannot be hash-locked; "
            "build a wheel from it and list the .whl file (or a URL to it) instead",
            path,
        )
    url = None
    if req.link is not None:
        link = str(req.link)
        if req.is_local_path:
            local = _relative(_Line(path, req.line_number), link.removeprefix("file://"), "local path")
            if not (_is_file(local) and local.suffix == ".whl"):
                raise RequirementsError(
                    f"line {req.line_number}: local path {line!r} is not a wheel file; "
                    "build one (`pip wheel --no-deps DIR`) and list the .whl, or pass the source with --code",
                    path,
                )
            url = local.as_uri()
        else:
            url = link
    if not req.name:
        raise RequirementsError(f"line {req.line_number}: requirement {line!r} has no package name", path)
    specifier = str(req.specifier) if req.specifier else ""
    marker = str(req.marker) if req.marker else None
    extras = tuple(sorted(req.extras or ()))
    text = canonicalize_name(req.name) + (f"[{','.join(extras)}]" if extras else "")
    text += f" @ {url}" if url else specifier
    if marker:
        text += f" ; {marker}"
    return Requirement(
        name=canonicalize_name(req.name),
        text=text,
        specifier=specifier,
        marker=marker,
        extras=extras,
        file=shown,
        line=req.line_number,
        constraint=constraint,
        url=url,
        hashes=tuple(req.hash_options or ()),
    )


def redact_url(url: str) -> str:
    """The URL without its credentials (`https://user:token@host/simple` -> `https://***@host/simple`)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    if "@" in host:
        host = "***@" + host.rsplit("@", 1)[1]
    return f"{scheme}://{host}{slash}{path}"


# Paths and URLs in a requirements file are the user's strings: the os and pathlib calls below raise
# ValueError on a NUL byte, RuntimeError on `~nosuchuser`, OSError on a name too long, none of which
# may escape as an internal error (tests/test_requirements.py, found by tests/test_fuzz.py).


@dataclass(frozen=True)
class _Line:
    """Where a path or URL was written: the error names the file and the line."""

    file: Path
    number: int

    def error(self, message: str) -> RequirementsError:
        return RequirementsError(f"line {self.number}: {message}", self.file)


def _show(text: str, limit: int = 80) -> str:
    """The user's string quoted for a one-line message, cut when it is long."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def _checked(at: _Line, target: str, what: str) -> str:
    bad = next((c for c in target if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise at.error(f"{what} {_show(target)} contains the control character {bad!r}")
    return target


def _user_path(at: _Line, target: str, what: str) -> Path:
    try:
        return Path(_checked(at, target, what)).expanduser()
    except RuntimeError as exc:  # `~user` for a user that does not exist, or no home directory at all
        raise at.error(f"{what} {_show(target)}: {first_line(exc)}") from None


def _resolve(path: Path, at: _Line | None = None, what: str = "", written: str = "") -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop (RuntimeError before Python 3.13)
        raise _unreadable(path, exc, at, what, written) from None


def _is_file(path: Path, at: _Line | None = None, what: str = "", written: str = "") -> bool:
    """pathlib's is_file, which says False for a missing file but raises on ENAMETOOLONG or EACCES."""
    try:
        return path.is_file()
    except OSError as exc:
        raise _unreadable(path, exc, at, what, written) from None


def _unreadable(path: Path, exc: Exception, at: _Line | None, what: str, written: str) -> RequirementsError:
    reason = getattr(exc, "strerror", None) or first_line(exc)
    if at is None:
        return RequirementsError(f"cannot read ({reason})", path)
    return at.error(f"{what} {_show(written or str(path))}: {reason}")


def _include(at: _Line, target: str, what: str) -> Path:
    """An included file, relative to the including one (as pip does), kept relative when that was."""
    p = _user_path(at, target, what)
    p = p if p.is_absolute() else Path(os.path.normpath(at.file.parent / p))
    _is_file(p, at, what, target)  # an unreadable name is this line's error, not the file's
    return p


def _relative(at: _Line, target: str, what: str) -> Path:
    p = _user_path(at, target, what)
    p = p if p.is_absolute() else _resolve(at.file.parent / p, at, what, target)
    _is_file(p, at, what, target)
    return p


def _url(at: _Line, url: str, what: str) -> str:
    """An index URL as given; one that uv or urllib would choke on is refused here, naming the line."""
    _checked(at, url, what)
    if any(c.isspace() for c in url):
        raise at.error(f"{what} {_show(url)} contains white space")
    try:
        urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise at.error(f"{what} {_show(url)} is not a valid URL ({first_line(exc)})") from None
    return url


def _link(at: _Line, link: str) -> str:
    if "://" in link:
        return _url(at, link, "--find-links URL")
    return str(_relative(at, link, "--find-links path"))


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
