"""`--model-builder MODULE:FUNCTION`: the user's function that builds the model a weights-only file needs.

A file written by `model.save_weights(...)` holds no architecture: only the code that built the model
can make something to load it into. The function lives in a `--code` module; in the image it is called
with no arguments and must return the Keras model, built (a functional or Sequential model is built
once created), into which `load_weights(FILE)` then reads the weights.

Here the function is only found, never run: its module's source is parsed (ast) to check it defines
the name at top level, so a typo is a one-line error before minutes of locking and building. Running
user code is for the image's sandboxed containers.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from smenv.errors import UsageError, first_line
from smenv.render.runtime_files import RUNTIME_MODULES


@dataclass(frozen=True)
class ModelBuilder:
    module: str  # dotted, importable from the image's code directory
    function: str

    def __str__(self) -> str:
        return f"{self.module}:{self.function}"


def parse(spec: str) -> ModelBuilder:
    """MODULE:FUNCTION, each part a Python identifier (the module may be dotted); else a usage error."""
    module, sep, function = spec.strip().partition(":")
    if not sep or not function.isidentifier() or not all(part.isidentifier() for part in module.split(".")):
        raise UsageError(f"--model-builder {spec!r}: expected MODULE:FUNCTION, e.g. my_model:build_model")
    return ModelBuilder(module, function)


def check(builder: ModelBuilder, code: tuple[Path, ...]) -> Path:
    """The source file that defines the builder's function, among the --code paths; else a usage error."""
    head = builder.module.split(".")[0]
    if head in RUNTIME_MODULES:
        raise UsageError(f"--model-builder {builder}: the image's own {head!r} module would be imported instead of yours; "
                         "rename your module")
    try:
        source = _module_file(builder.module, code)
    except OSError as exc:  # a name too long for the file system, a directory that cannot be read
        raise UsageError(f"--model-builder {builder}: cannot look for module {builder.module}: "
                         f"{exc.strerror or type(exc).__name__}") from None
    if source is None:
        given = ", ".join(str(c) for c in code) or "none"
        raise UsageError(
            f"--model-builder {builder}: module {builder.module} is not in the --code paths given ({given}); "
            f"pass --code with its file ({builder.module.split('.')[0]}.py) or package directory"
        )
    try:
        text = source.read_bytes()
    except OSError as exc:
        raise UsageError(f"--model-builder {builder}: cannot read the module: {exc.strerror or type(exc).__name__}", source) from None
    try:
        tree = ast.parse(text, filename=str(source))
    # ValueError: a NUL byte (before Python 3.12); RecursionError and MemoryError: CPython's parser on
    # deeply nested expressions ("-" * 10**6 + "1"), which the interpreter could not import either.
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise UsageError(f"--model-builder {builder}: cannot parse the module: {type(exc).__name__}: {first_line(exc)}",
                         source) from None
    if not _defines(tree, builder.function):
        raise UsageError(f"--model-builder {builder}: the module defines no top-level {builder.function}", source)
    return source


def _module_file(module: str, code: tuple[Path, ...]) -> Path | None:
    """Where `module` is, as the image's PYTHONPATH (one entry holding each --code path) would find it."""
    head, *rest = module.split(".")
    for path in code:
        if path.is_file() and path.name == f"{head}.py" and not rest:
            return path
        if path.is_dir() and path.name == head:
            target = path.joinpath(*rest)
            for candidate in (target.with_suffix(".py") if rest else None, target / "__init__.py"):
                if candidate is not None and candidate.is_file():
                    return candidate
    return None


_BLOCKS = (ast.If, ast.Try, getattr(ast, "TryStar", ast.Try), ast.With, ast.AsyncWith, ast.For, ast.While)


def _defines(tree: ast.Module, name: str) -> bool:
    """Whether the module may bind `name` at top level: a function, class, assignment or import, also
    inside top-level if/try/with blocks. A star import or a module __getattr__ may provide any name,
    which cannot be known without running the module: then it is taken on trust."""
    names: set[str] = set()
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(a.name == "*" for a in node.names):
                return True
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, _BLOCKS):
            for block in ("body", "orelse", "finalbody"):
                pending.extend(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                pending.extend(handler.body)
    return name in names or "__getattr__" in names
