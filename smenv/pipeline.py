"""The stages in order: read the model -> resolve -> lock -> render a build context.

Each stage takes the previous one's frozen result. This module wires them; the CLI only parses
options and displays what comes back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import smenv
from smenv.env.lock import Lock, lock
from smenv.env.plan import EnvironmentPlan
from smenv.env.requirements import Requirements, parse_requirements
from smenv.env.resolve import ResolveOptions, resolve
from smenv.model.facts import ModelFacts
from smenv.model.inspect import inspect_model
from smenv.render.context import ContextError, ContextFiles, write_context
from smenv.render.dockerfile import MODEL_DIR, UID, base_image_for, render_dockerfile

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ModelInput:
    path: Path
    version: int | None = None
    tags: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Generated:
    facts: ModelFacts
    plan: EnvironmentPlan
    lock: Lock | None
    base_image: str | None
    dockerfile: str | None
    context: Path | None
    notes: tuple[str, ...] = ()
    plan_json: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"ok": True, "context": str(self.context) if self.context else None, **self.plan_json}


def read_inputs(model: ModelInput, requirements: Path | None) -> tuple[ModelFacts, Requirements | None]:
    facts = inspect_model(model.path, version=model.version, tags=model.tags)
    reqs = parse_requirements(requirements) if requirements else None
    return facts, reqs


def plan(model: ModelInput, requirements: Path | None, options: ResolveOptions) -> tuple[ModelFacts, EnvironmentPlan]:
    facts, reqs = read_inputs(model, requirements)
    return facts, resolve(facts, reqs, options)


def generate(
    model: ModelInput,
    requirements: Path | None,
    options: ResolveOptions,
    out: Path | None,
    code: tuple[Path, ...] = (),
    offline: bool = False,
    wheel_files: tuple[Path, ...] | None = None,
    dry_run: bool = False,
    progress: Progress = lambda msg: None,
) -> Generated:
    for c in code:
        if not c.exists():
            raise ContextError("--code path not found", c)
    progress("reading the model")
    facts, env_plan = plan(model, requirements, options)
    if dry_run:
        return Generated(facts, env_plan, None, None, None, None, (), _plan_json(facts, env_plan, None, None, (), code))
    progress("locking the environment")
    the_lock, notes = lock(env_plan, progress)
    base, install_python = base_image_for(env_plan, the_lock.python)
    root = Path(facts.model_root)
    subpath = "" if root.is_dir() else root.name
    dockerfile = render_dockerfile(
        facts, env_plan, the_lock, base_image=base, install_python=install_python, offline=offline,
        has_code=bool(code), model_subpath=subpath,
    )
    data = _plan_json(facts, env_plan, the_lock, base, tuple(notes), code)
    if out is None:
        return Generated(facts, env_plan, the_lock, base, dockerfile, None, tuple(notes), data)
    if offline and wheel_files is None:
        from smenv.env.wheels import download_wheels

        wheel_files = download_wheels(the_lock, env_plan, progress=progress).files
    progress(f"writing the build context to {out}")
    written = write_context(
        out,
        ContextFiles(
            dockerfile=dockerfile,
            lock_text=the_lock.text,
            plan_json=data,
            model_root=root,
            model_subpath=subpath,
            code_paths=tuple(code),
            wheel_files=wheel_files if offline else None,
        ),
    )
    return Generated(facts, env_plan, the_lock, base, dockerfile, written, tuple(notes), data)


def _plan_json(facts: ModelFacts, env_plan: EnvironmentPlan, the_lock: Lock | None, base: str | None,
               notes: tuple[str, ...], code: tuple[Path, ...]) -> dict:
    root = Path(facts.model_root)
    model_path = MODEL_DIR if root.is_dir() else f"{MODEL_DIR}/{root.name}"
    environment = env_plan.to_json()
    environment["python"] = the_lock.python if the_lock else env_plan.python_candidates[0]
    environment["base_image"] = base
    return {
        "smenv_version": smenv.__version__,
        "model": facts.to_json(),
        "environment": environment,
        "lock": {"digest": the_lock.digest, "packages": the_lock.packages} if the_lock else None,
        "image": {"model_path": model_path, "uid": UID, "code": [c.name for c in code]},
        "notes": list(notes),
    }
