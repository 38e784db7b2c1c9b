"""Write a self-contained Docker build context, atomically.

Everything is written to a temporary directory beside the target and renamed into place at the end,
so a failure (bad input, full disk, Ctrl-C) never leaves a half-written context. Output is
deterministic: sorted JSON, normalised permissions, no timestamps or temporary paths.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from smenv.errors import ContextError, UnsafeModel
from smenv.render import runtime_files

MARKER = "smenv.json"  # a directory holding this file is an smenv build context and may be replaced



@dataclass(frozen=True)
class ContextFiles:
    dockerfile: str
    lock_text: str
    plan_json: dict
    model_root: Path  # a SavedModel directory or a model file
    code_paths: tuple[Path, ...] = ()
    wheel_files: tuple[Path, ...] | None = None  # the lock's downloaded wheels (offline builds)


DEFAULT_OUTPUT = "smenv-build"


def default_output(model: Path, cwd: Path | None = None) -> Path:
    """Where `generate` writes when no --output is given: ./smenv-build, unless that lies inside the model
    directory (`cd model && smenv generate .`), which would copy the context into itself; then beside the
    model, as <model>-smenv-build."""
    base = cwd or Path.cwd()
    out = base / DEFAULT_OUTPUT
    root = (base / model).resolve()
    if root.is_dir() and _inside(out.resolve(), root):
        return root.parent / f"{root.name}-{DEFAULT_OUTPUT}"
    return Path(DEFAULT_OUTPUT)


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def check_outside_model(out: Path, model: Path) -> None:
    """A context inside the model directory would be copied into itself ("File name too long")."""
    root = model.resolve()
    if root.is_dir() and _inside(out.resolve(), root):
        raise ContextError(f"is inside the model directory {root}; choose an --output outside it", out)


def write_context(out: Path, files: ContextFiles) -> Path:
    out = out.resolve()
    check_outside_model(out, files.model_root)
    if out.exists() and not out.is_dir():
        raise ContextError("exists and is not a directory; choose another --output", out)
    if out.exists() and not (out / MARKER).is_file() and any(out.iterdir()):
        raise ContextError("exists and is not an smenv build context; choose another --output", out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where a directory should be, no permission, read-only filesystem
        blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file, not a directory" if blocker else (exc.strerror or str(exc))
        raise ContextError(f"cannot create its parent directory ({why})", out) from None
    with _staging(out) as tmp:
        _write_text(tmp / "Dockerfile", files.dockerfile)
        _write_text(tmp / "requirements.lock", files.lock_text)
        plan_text = json.dumps(files.plan_json, indent=2, sort_keys=True) + "\n"
        _write_text(tmp / MARKER, plan_text)
        # payload/ is what changes with the model, copied into the image in one step (/opt/smenv/).
        payload = tmp / "payload"
        payload.mkdir()
        os.chmod(payload, 0o755)
        _write_text(payload / MARKER, plan_text)
        _write_text(tmp / "verify.py", runtime_files.verifier().decode("utf-8"))
        serve = tmp / runtime_files.SERVE_PACKAGE
        serve.mkdir()
        os.chmod(serve, 0o755)
        for name, data in runtime_files.server_files():
            _write_text(serve / name, data.decode("utf-8"))
        _write_text(tmp / ".dockerignore", "# written by smenv: send everything in this context\n")
        model_dest = payload / "model"
        if files.model_root.is_dir():
            _copy_tree(files.model_root, model_dest)
        else:
            model_dest.mkdir()
            _copy_file(files.model_root, model_dest / files.model_root.name)
        if files.code_paths:
            code_dest = tmp / "code"
            code_dest.mkdir()
            for src in files.code_paths:
                target = code_dest / src.name
                if target.exists():
                    raise ContextError(f"two --code paths are both named {src.name!r}", src)
                _copy_tree(src, target) if src.is_dir() else _copy_file(src, target)
        if files.wheel_files is not None:
            _link_or_copy(files.wheel_files, tmp / "wheels")
    return out


@contextmanager
def _staging(out: Path):
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.smenv-", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if out.exists():
            old = out.with_name(f".{out.name}.smenv-old-{os.getpid()}")
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ContextError(f"cannot write the build context: {exc.strerror or exc}", out) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    os.chmod(path, 0o644)


def _copy_file(src: Path, dest: Path) -> None:
    shutil.copyfile(src, dest)
    os.chmod(dest, 0o644)  # readable by the image's unprivileged user, whatever the source mode


def _copy_tree(src: Path, dest: Path) -> None:
    """Copy a directory; symlinks are followed only when they stay inside it."""
    dest.mkdir()
    os.chmod(dest, 0o755)
    for rel, path in safe_tree(src):
        if path is None:
            (dest / rel).mkdir()
            os.chmod(dest / rel, 0o755)
        else:
            _copy_file(path, dest / rel)


def safe_tree(src: Path):
    """(relative path, file) for every directory (file None) and file under `src`, parents first, sorted.

    What goes into an image from a model or --code directory: a directory symlink is refused, and so is
    a file symlink that leads out of `src` (it would copy a host file into the image).
    """
    root = src.resolve()
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        rel = here.relative_to(src)
        for name in dirnames:
            p = here / name
            if p.is_symlink():
                raise UnsafeModel(f"directory symlink {p.relative_to(src)} is not copied into an image", src)
            yield rel / name, None
        for name in sorted(filenames):
            p = here / name
            if p.is_symlink():
                target = p.resolve()
                if root not in target.parents:
                    raise UnsafeModel(f"{p.relative_to(src)} links outside the model directory", src)
            yield rel / name, p


def _link_or_copy(wheels: tuple[Path, ...], dest: Path) -> None:
    """Wheels can be hundreds of megabytes: hard-link them from the cache when the filesystem allows."""
    dest.mkdir()
    for wheel in sorted(wheels):
        try:
            os.link(wheel, dest / wheel.name)
        except OSError:
            shutil.copyfile(wheel, dest / wheel.name)
