"""The training requirements.txt, parsed the way pip reads it (via pip-requirements-parser).

Honoured: comments, `-r`/`-c` includes (relative to the including file, as pip does), environment
markers, extras, `--hash`, and the index options `--index-url`, `--extra-index-url`, `--find-links`,
which carry over to locking and building. Direct URLs to wheels and local wheel files are kept.
Editable, VCS and local-directory requirements cannot be hash-locked or built without running their
build code, so they are refused with the file and line and what to do instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

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
            "find_links": [redact_url(u) for u in self.find_links],
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
    # Paths are recorded as the user gave them (relative stays relative), so the same inputs give the
    # same plan in any checkout; identity for cycle detection uses the resolved path.
    index = _collect(path, reqs, files, constraint=False, stack=())
    return Requirements(tuple(reqs), index, tuple(files))


def _collect(path: Path, out: list[Requirement], files: list[str], constraint: bool, stack: tuple[Path, ...]) -> IndexOptions:
    if path.resolve() in stack:
        raise RequirementsError(f"includes itself through {' -> '.join(p.name for p in stack)}", path)
    if not path.is_file():
        raise RequirementsError("included requirements file not found", path)
    files.append(str(path))
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
        for included in o.get("requirements", []):
            index = index.merged(_collect(_include(path, included), out, files, constraint, stack + (path.resolve(),)))
        for included in o.get("constraints", []):
            index = index.merged(_collect(_include(path, included), out, files, True, stack + (path.resolve(),)))
        index = index.merged(
            IndexOptions(
                index_url=o.get("index_url"),
                extra_index_urls=tuple(o.get("extra_index_urls", ())),
                find_links=tuple(_link(path, f) for f in o.get("find_links", ())),
                no_index=bool(o.get("no_index")),
            )
        )
    for req in parsed.requirements:
        out.append(_requirement(req, path, constraint))
    return index


def _requirement(req, path: Path, constraint: bool) -> Requirement:
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
            local = _relative(path, link.removeprefix("file://"))
            if not (local.is_file() and local.suffix == ".whl"):
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
        file=str(path),
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


def _include(including: Path, target: str) -> Path:
    """An included file, relative to the including one (as pip does), kept relative when that was."""
    p = Path(target).expanduser()
    return p if p.is_absolute() else Path(os.path.normpath(including.parent / p))


def _relative(including: Path, target: str) -> Path:
    p = Path(target).expanduser()
    return p if p.is_absolute() else (including.parent / p).resolve()


def _link(including: Path, link: str) -> str:
    if "://" in link:
        return link
    return str(_relative(including, link))


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
