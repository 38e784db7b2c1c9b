"""The stages in order: read the model -> resolve -> lock -> render a build context.

Each stage takes the previous one's frozen result. This module wires them; the CLI only parses
options and displays what comes back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import smenv
from smenv.env.lock import Lock, lock_plan
from smenv.env.plan import EnvironmentPlan
from smenv.env.requirements import Requirements, parse_requirements
from smenv.env.resolve import BaseImageChoice, ResolveOptions, choose_base_image, resolve
from smenv.errors import UsageError
from smenv.model.builder import ModelBuilder
from smenv.model.builder import check as check_builder
from smenv.model.facts import ModelFacts
from smenv.model.inspect import inspect_model
from smenv.model.load_risks import foresee
from smenv.render.context import ContextError, ContextFiles, write_context
from smenv.render.dockerfile import MODEL_DIR, UID, render_dockerfile, serving_name
from smenv.render.runtime_files import RUNTIME_MODULES

if TYPE_CHECKING:
    from smenv.docker.engine import ImageInfo, Sandbox
    from smenv.docker.obtain_base import ObtainedBase
    from smenv.docker.interface import ContainerEngine
    from smenv.verify.runner import Verdict

Progress = Callable[[str], None]
VENV_HISTORY = "smenv: install requirements.lock into /opt/venv"


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
    base: BaseImageChoice | None  # decided once the lock has chosen the Python
    dockerfile: str | None
    context: Path | None
    notes: tuple[str, ...] = ()
    plan_json: dict = field(default_factory=dict)

    @property
    def base_image(self) -> str | None:
        return self.base.image if self.base else None

    def to_json(self) -> dict:
        return {"ok": True, "context": str(self.context) if self.context else None, **self.plan_json}


def read_inputs(model: ModelInput, requirements: Path | None) -> tuple[ModelFacts, Requirements | None]:
    facts = inspect_model(model.path, version=model.version, tags=model.tags)
    reqs = parse_requirements(requirements) if requirements else None
    return facts, reqs


def plan(model: ModelInput, requirements: Path | None, options: ResolveOptions) -> tuple[ModelFacts, EnvironmentPlan]:
    facts, reqs = read_inputs(model, requirements)
    return facts, resolve(facts, reqs, options)


def check_code(code: tuple[Path, ...], builder: ModelBuilder | None = None) -> None:
    """Every --code path exists (it is copied into the context and the image), under a name the image's
    own runtime does not take first, and defines the --model-builder function (found without running it)."""
    for c in code:
        if not c.exists():
            raise ContextError("--code path not found", c)
        module = c.name[:-3] if c.name.endswith(".py") else c.name
        if module in RUNTIME_MODULES:
            raise UsageError(f"--code: the image's own {module!r} module comes first on its PYTHONPATH, so this one "
                             "would never be imported; rename it", c)
    if builder is not None:
        check_builder(builder, code)


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
    check_code(code, options.model_builder)  # a typo is said now, not after the build
    progress("reading the model")
    facts, env_plan = plan(model, requirements, options)
    nearest = _nearest_release_note(env_plan)
    # Said now, before minutes of locking and building, and kept in the plan's notes (--json, smenv.json).
    warnings = _warnings(facts, code, env_plan.python_candidates[0], env_plan.keras_safe_mode)
    for warning in warnings:
        progress(warning)
    if dry_run:
        notes = (*nearest, *warnings)
        return Generated(facts, env_plan, None, None, None, None, notes, _plan_json(facts, env_plan, None, None, notes, code))
    progress("locking the environment")
    env_plan, the_lock, notes = lock_plan(env_plan, progress)
    notes = [*nearest, *_warnings(facts, code, the_lock.python, env_plan.keras_safe_mode), *notes]
    if the_lock.sources and out is not None:
        # The context's lock names these by their sdist's hash and its wheels/ cannot hold them: only
        # `smenv build` builds them (in a sandbox) and installs them by the built wheel's hash.
        notes.append(f"{', '.join(the_lock.sources)} must be built from source, which `smenv build` does in a sandbox: "
                     "`docker build` of this context cannot install them")
    if not offline and _carries_credentials(env_plan.index.index_url, *env_plan.index.extra_index_urls):
        # An online Dockerfile would name the index in a RUN line, and `docker build` keeps RUN lines in
        # the image history: download on the host instead (tests/test_private_index.py).
        offline = True
        notes = [*notes, "the index URL carries credentials: the wheels are downloaded into the context "
                 "(as with --offline) so that no credential reaches the Dockerfile or the image"]
    base = choose_base_image(env_plan, the_lock.python)
    env_plan = env_plan.with_decision(base.decision)
    dockerfile = render_dockerfile(
        facts, env_plan, the_lock, base_image=base.image, install_python=base.install_python, offline=offline,
        has_code=bool(code),
    )
    data = _plan_json(facts, env_plan, the_lock, base.image, tuple(notes), code)
    generated = Generated(facts, env_plan, the_lock, base, dockerfile, None, tuple(notes), data)
    if out is None:
        return generated
    if offline and wheel_files is None:
        from smenv.env.wheels import download_wheels

        wheel_files = download_wheels(the_lock, env_plan, progress=progress).files
    progress(f"writing the build context to {out}")
    written = _write(generated, out, code, dockerfile, wheel_files if offline else None)
    return replace(generated, context=written)


def _warnings(facts: ModelFacts, code: tuple[Path, ...], python: str, safe_mode: bool) -> list[str]:
    return [f"warning: {risk.message}" for risk in foresee(facts, code, python, safe_mode)]


def _nearest_release_note(env_plan: EnvironmentPlan) -> tuple[str, ...]:
    if env_plan.exact_release is None:
        return ()
    return (f"TensorFlow {env_plan.exact_release}, the model's own release, cannot be built on this host: the plan uses "
            f"TensorFlow {env_plan.tensorflow_version}, the oldest release that builds here and loads it (why: the "
            "tensorflow decision); --exact refuses instead",)


def companion_imports(locked: dict[str, str]) -> list[str]:
    from smenv.model.companions import op_registering_modules

    return [module for package, module in op_registering_modules().items() if package in locked]


def _plan_json(facts: ModelFacts, env_plan: EnvironmentPlan, the_lock: Lock | None, base: str | None,
               notes: tuple[str, ...], code: tuple[Path, ...]) -> dict:
    root = Path(facts.model_root)
    model_path = MODEL_DIR if root.is_dir() else f"{MODEL_DIR}/{root.name}"
    environment = env_plan.to_json()
    environment["python"] = the_lock.python if the_lock else env_plan.python_candidates[0]
    environment["base_image"] = base
    return {
        "smenv_version": smenv.__version__,
        "model": _portable_model(facts),
        "environment": environment,
        "lock": {"digest": the_lock.digest, "packages": the_lock.packages} if the_lock else None,
        "image": {
            "model_path": model_path,
            "uid": UID,
            "model_name": serving_name(facts),  # the served name (python -m serve; MODEL_NAME overrides)
            "code": [c.name for c in code],
            # Companion packages register their ops on import; the verifier imports them before loading.
            "imports": companion_imports(the_lock.packages if the_lock else {}),
        },
        "notes": list(notes),
    }


def _portable_model(facts: ModelFacts) -> dict:
    """The model's facts with its host paths replaced by its name (`half_plus_two`,
    `half_plus_two/00000123`): the plan goes into the image, whose ID must not depend on the directory
    the model was built from."""
    data = facts.to_json()
    given = Path(facts.path).resolve()
    root = Path(facts.model_root).resolve()
    data["path"] = given.name
    data["model_root"] = given.name if root == given else f"{given.name}/{root.relative_to(given).as_posix()}"
    return data


# -- build and verify ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    generated: Generated
    image: str
    image_id: str
    size_bytes: int
    build_seconds: float
    log_path: Path
    verdict: "Verdict | None"
    fixed: tuple[str, ...] = ()  # packages --fix added
    dependencies: str = ""  # how the dependency image was had: reused, pulled from the cache, installed
    base_obtained: str = ""  # how the base image was had: on the engine, pulled from REF, built from Debian SUITE
    saved: Path | None = None  # --save: the docker-archive written
    pushed_digest: str | None = None  # --push: the registry's digest of the image

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code if self.verdict else 0

    def to_json(self) -> dict:
        return {
            "ok": self.exit_code == 0,
            "image": self.image,
            "image_id": self.image_id,
            "size_bytes": self.size_bytes,
            "build_seconds": self.build_seconds,
            "build_log": str(self.log_path),
            "fixed_with": list(self.fixed),
            "dependencies": self.dependencies,
            "base_image": {"image": self.generated.base_image, "obtained": self.base_obtained},
            "saved": str(self.saved) if self.saved else None,
            "pushed": {"tag": self.image, "digest": self.pushed_digest} if self.pushed_digest is not None else None,
            "verification": self.verdict.to_json() if self.verdict else None,
            "plan": self.generated.plan_json,
        }


def default_tag(facts: ModelFacts) -> str:
    """`smenv/<model name>:<first 12 hex of the model digest>`: one tag per model content."""
    import re

    name = re.sub(r"[^a-z0-9._-]+", "-", Path(facts.path).resolve().name.lower()).strip("-._") or "model"
    return f"smenv/{name}:{facts.digest.split(':')[-1][:12]}"


def log_file(tag: str) -> Path:
    import os
    import time

    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return state / "smenv" / "logs" / f"build-{tag.replace('/', '_').replace(':', '_')}-{stamp}.log"


def build(
    model: ModelInput,
    requirements: Path | None,
    options: ResolveOptions,
    *,
    tag: str | None = None,
    code: tuple[Path, ...] = (),
    online: bool = False,
    sandbox: Sandbox | None = None,
    verify: bool = True,
    fix: bool = False,
    context_dir: Path | None = None,
    engine: ContainerEngine | None = None,
    progress: Progress = lambda msg: None,
    sample_input: Path | None = None,
    push: bool = False,
    cache_registry: str | None = None,
    save: Path | None = None,
) -> Built:
    """Generate, build the dependency image (unless built already), build the runtime image on it, verify
    it (with `sample_input`, an .npz of arrays named after the inputs, instead of made-up input); with
    `fix`, rebuild once with the packages a diagnosis names."""
    from smenv.docker.engine import Sandbox, connect

    if context_dir is not None:  # --context inside the model would copy the context into itself
        from smenv.render.context import check_outside_model

        check_outside_model(context_dir, model.path)
    engine = engine or connect()  # fail fast, before minutes of locking and downloading
    options = with_engine_bases(options, engine)
    job = BuildJob(model, requirements, options, tag, tuple(code), online, verify, context_dir, sample_input,
                   push, cache_registry, save)
    return _build(job, engine, sandbox or Sandbox(gpu=options.gpu), fix, progress)


def with_engine_bases(options: ResolveOptions, engine: ContainerEngine) -> ResolveOptions:
    """`options` knowing which Pythons' official base images the engine already has (the Python choice
    prefers those it can obtain; `generate` leaves the engine out, so its plan is the same on any host)."""
    from smenv.env.bases import known_pythons, official_image

    on_engine = tuple(p for p in known_pythons() if engine.image_info(official_image(p)) is not None)
    return replace(options, bases=replace(options.bases, on_engine=on_engine))


@dataclass(frozen=True)
class BuildJob:
    """What `build` was asked for, minus the engine, the sandbox and --fix."""

    model: ModelInput
    requirements: Path | None
    options: ResolveOptions
    tag: str | None
    code: tuple[Path, ...]
    online: bool
    verify: bool
    context_dir: Path | None  # --context: also write the self-contained build context there
    sample_input: Path | None = None  # --sample-input: what verification feeds the model
    push: bool = False  # --push: push the image under its tag once it verified
    cache_registry: str | None = None  # --cache-registry: where dependency images are shared
    save: Path | None = None  # --save: the image as a docker-archive file


@dataclass(frozen=True)
class RuntimeImage:
    tag: str
    image_id: str
    size_bytes: int
    build_seconds: float
    context: Path | None = None
    dependencies: str = ""
    base_obtained: str = ""  # how the base image was had (ObtainedBase.how)


@dataclass(frozen=True)
class DependencyImage:
    """The base image's layers and the locked environment's (/opt/venv) layer, as an image of its own."""

    tag: str
    info: ImageInfo  # its layers: the base's, then /opt/venv
    base: ImageInfo
    how: str  # "reused", "pulled from REGISTRY", "installed"
    base_obtained: str = ""  # how the base image was had (ObtainedBase.how)


def _build(job: BuildJob, engine: ContainerEngine, sandbox: Sandbox, fix: bool, progress: Progress) -> Built:
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="smenv-build-"))  # layers and contexts on their way to the engine
    try:
        generated = generate_for_build(job, progress)
        tag = job.tag or default_tag(generated.facts)
        log = log_file(tag)
        if generated.base.install_python:
            # A CUDA runtime base has no Python: the runtime stage installs one, so the classic two-stage
            # `docker build` makes this image (GPU routes of TF < 2.14 only).
            deps_tag, obtained = build_dependency_image(engine, generated, job, scratch / "deps-context", log, progress)
            image = build_runtime_image(engine, generated, job, deps_tag, tag, scratch / "context", log, progress, obtained)
        else:
            deps = dependency_image(engine, generated, job, scratch, log, progress)
            image = assemble_runtime_image(engine, generated, job, deps, tag, scratch, progress)
            _log(log, f"# {tag}: {image.image_id}, on {deps.tag} (dependencies {deps.how}), "
                      f"the model's layer made and loaded in {image.build_seconds:.2f} s")
        if job.context_dir:
            write_build_context(generated, job, job.context_dir, progress)
        verdict = verify_built_image(engine, image.tag, sandbox, progress, job.sample_input) if job.verify else None
        built = Built(replace(generated, context=job.context_dir), image.tag, image.image_id, image.size_bytes,
                      image.build_seconds, log, verdict, dependencies=image.dependencies,
                      base_obtained=image.base_obtained)
        added = fix_packages(verdict) if fix else ()
        if added:
            return fix_and_rebuild(job, tag, added, engine, sandbox, progress)
        return deliver(engine, built, job, progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def deliver(engine: ContainerEngine, built: Built, job: BuildJob, progress: Progress) -> Built:
    """--save and --push, for an image that verified (or was not asked to): a broken image goes nowhere."""
    if not (job.save or job.push) or built.exit_code != 0:
        return built
    saved = pushed = None
    if job.save:
        progress(f"saving {built.image} to {job.save}")
        saved = save_image(engine, built.image, job.save)
    if job.push:
        from smenv.errors import RegistryError

        progress(f"pushing {built.image}")
        try:
            pushed = engine.push(built.image, progress)
        except RegistryError as exc:
            # The image is whole on the engine whatever the registry did: say so, so that a retry is a push.
            raise RegistryError(f"{exc.message}; the image is built and kept on the Docker engine: "
                                f"`docker push {built.image}` sends it once the registry accepts it") from exc
    return replace(built, saved=saved, pushed_digest=pushed)


def save_image(engine: ContainerEngine, tag: str, out: Path) -> Path:
    """`docker save` into `out`, written beside it and renamed into place: never a half-written archive."""
    import os
    import tempfile

    from smenv.errors import ContextError as OutputError

    out = out.resolve()
    if out.is_dir():
        raise OutputError("is a directory; --save takes a file name (image.tar)", out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    except OSError as exc:
        raise OutputError(f"cannot write the image archive ({exc.strerror or exc})", out) from None
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in engine.save(tag):
                f.write(chunk)
        os.replace(tmp, out)
    except OSError as exc:
        raise OutputError(f"cannot write the image archive ({exc.strerror or exc})", out) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def generate_for_build(job: BuildJob, progress: Progress) -> Generated:
    """`generate` for a build: offline unless --online, which refuses what it would leak or cannot fetch."""
    if job.online:
        _refuse_credentials_online(job.requirements)
    generated = generate(job.model, job.requirements, job.options, None, code=job.code, offline=not job.online,
                         progress=progress)
    if generated.lock.sources and (job.online or job.context_dir):
        from smenv.errors import UsageError

        raise UsageError(
            f"{', '.join(generated.lock.sources)} exist(s) only as source and are built in a sandbox by `smenv build`: "
            f"{'--online' if job.online else '--context'} cannot carry the built wheels yet; build without it"
        )
    if job.online and generated.lock.direct:
        from smenv.errors import RequirementsError

        raise RequirementsError(
            f"{', '.join(generated.lock.direct)} come(s) from a local wheel or a wheel URL, which a build with "
            "--online cannot fetch; build without --online (the host downloads them)",
            job.requirements,
        )
    return generated


def dependency_image(engine: ContainerEngine, generated: Generated, job: BuildJob, scratch: Path, log: Path,
                     progress: Progress) -> DependencyImage:
    """The dependency image for this lock and base: the engine's, else the cache registry's, else installed.

    Installing runs pip in a throw-away container of the base image (docker/install.py) and loads the
    result as one reproducible layer on the base's (docker/assemble.py): nothing is committed, and the
    same lock and base give the same layer, and so the same image ID, anywhere.
    """
    from smenv.docker.assemble import Archive, ImageSpec, ImageToLoad, docker_archive, image_config
    from smenv.render.dockerfile import INSTALL_ENV, index_options, install_script

    obtained = _require_base_image(engine, generated, job.options.bases.registry, progress)
    base = obtained.info
    tag = dependency_image_tag(generated, base.id, job.online)
    remote = f"{job.cache_registry.rstrip('/')}/{tag}" if job.cache_registry else None
    info = engine.image_info(tag)
    if info is not None:
        progress(f"dependencies: {tag} is already built")
        if remote:
            _share(engine, tag, remote, progress)
        return DependencyImage(tag, info, base, "reused", obtained.how)
    rejected = False  # the cache held another image under this lock's name: replaced once installed
    if remote and _pull_shared(engine, remote, progress):
        if _is_shared_dependency_image(engine, remote, generated.lock.digest, base, progress):
            engine.tag_image(remote, tag)
            return DependencyImage(tag, engine.image_info(tag), base, f"pulled from {job.cache_registry}", obtained.how)
        rejected = True
    wheel_files = None
    if not job.online:
        from smenv.env.wheels import download_wheels

        wheel_files = download_wheels(generated.lock, generated.plan, progress=progress).files
    lock_text = generated.lock.text
    if generated.lock.sources:
        # sdist-only packages: built into wheels in a sandbox of this base, installed by the wheels' hashes
        from smenv.env.sdist_build import build_sources, install_lock_text

        built = build_sources(engine, base.id, generated.lock, log, generated.plan.index.index_url, progress=progress,
                              base_name=generated.base.image)
        wheel_files = tuple(wheel_files or ()) + tuple(b.wheel for b in built)
        lock_text = install_lock_text(lock_text, built)
    script = install_script(generated.lock.python, not job.online, index_options(generated.plan) if job.online else [])
    layer = engine.install_layer(base.id, script, lock_text, wheel_files, scratch / "venv.tar", log,
                                 env=INSTALL_ENV, network=job.online, progress=progress)
    spec = ImageSpec(
        env=(), user=base.config.get("User") or "", workdir=base.config.get("WorkingDir") or "",
        cmd=tuple(base.config.get("Cmd") or ()), created=_created(generated),
        labels={"org.smenv.version": smenv.__version__, "org.smenv.lock.digest": generated.lock.digest,
                "org.smenv.base.id": base.id},
    )
    config = image_config(base.config, base.diff_ids, [(layer.diff_id, VENV_HISTORY)],
                          spec, base.architecture, base.os)
    progress(f"dependencies: loading {tag} ({layer.size / 2**20:.0f} MiB layer)")
    engine.load(docker_archive(Archive((ImageToLoad(config, (tag,)),), {layer.diff_id: layer.path})), tag)
    if remote:
        _share(engine, tag, remote, progress, replace=rejected)
    return DependencyImage(tag, engine.image_info(tag), base, "installed", obtained.how)


def _pull_shared(engine: ContainerEngine, remote: str, progress: Progress) -> bool:
    """Whether the cache registry gave the dependency image. A cache that cannot be read (refused, server
    error, gone mid-pull) costs this build an install, no more: said in one line, not fatal."""
    from smenv.errors import RegistryError

    progress(f"dependencies: looking for {remote}")
    try:
        return engine.pull(remote, progress)
    except RegistryError as exc:
        progress(f"dependencies: not taken from the cache registry, installed instead: {exc.message}")
        return False


def _is_shared_dependency_image(engine: ContainerEngine, remote: str, lock_digest: str, base: ImageInfo,
                                progress: Progress) -> bool:
    """Whether the image the cache registry gave under this lock's name is this lock's dependency image:
    its labels name this lock and base, and its layers are the base's and one more. Anyone who can push
    to the cache could put anything under that name: a mismatch is said, untagged and installed over."""
    info = engine.image_info(remote)
    problem = None
    if info is None:
        problem = "the engine does not list it after the pull"
    elif info.labels.get("org.smenv.lock.digest") != lock_digest:
        problem = f"its label names lock {_quoted(info.labels.get('org.smenv.lock.digest'))}, not {lock_digest}"
    elif info.labels.get("org.smenv.base.id") != base.id:
        problem = f"its label names base {_quoted(info.labels.get('org.smenv.base.id'))}, not {base.id}"
    elif info.diff_ids[:len(base.diff_ids)] != base.diff_ids or len(info.diff_ids) != len(base.diff_ids) + 1:
        problem = "its layers are not the base's and one more"
    if problem is None:
        return True
    progress(f"dependencies: {remote} from the cache registry is not this lock's dependency image ({problem}): "
             "installed instead")
    engine.remove_image(remote)
    return False


def _quoted(value: str | None, limit: int = 80) -> str:
    """A label's value in a one-line message: repr (newlines made visible), cut to `limit`."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _share(engine: ContainerEngine, tag: str, remote: str, progress: Progress, replace: bool = False) -> None:
    """Put the dependency image in the cache registry unless it is there already (`replace`: it holds
    another image under that name). A cache that cannot be filled (registry down, no credentials) only
    costs the next machine an install: said, not fatal."""
    from smenv.errors import RegistryError

    tagged = False
    try:
        if not replace and engine.registry_has(remote):
            return
        engine.tag_image(tag, remote)
        tagged = True
        progress(f"dependencies: sharing {remote}")
        engine.push(remote, progress)
    except RegistryError as exc:
        progress(f"dependencies: not shared through the cache registry (the build goes on): {exc.message}")
        if tagged:
            engine.remove_image(remote)  # only the registry's name for it: the image stays under `tag`


def assemble_runtime_image(engine: ContainerEngine, generated: Generated, job: BuildJob, deps: DependencyImage,
                           tag: str, scratch: Path, progress: Progress) -> RuntimeImage:
    """The image: the dependency image's layers, then one layer with the model, its plan, the verifier and
    --code, and the config the Dockerfile's stage 2 gives. Only the new layer is sent to the engine."""
    import json
    import time

    from smenv.docker.assemble import Archive, ImageSpec, ImageToLoad, docker_archive, image_config
    from smenv.docker import model_layers
    from smenv.docker.layers import Entry, tree_entries
    from smenv.render import runtime_files
    from smenv.render.dockerfile import CMD, CODE_DIR, HOME, image_labels, runtime_env

    started = time.monotonic()
    root = Path(generated.facts.model_root)
    plan_text = json.dumps(generated.plan_json, indent=2, sort_keys=True) + "\n"
    serve_dir = f"opt/smenv/{runtime_files.SERVE_PACKAGE}"
    entries = [
        Entry(HOME, uid=UID),
        Entry("opt/smenv/verify.py", data=runtime_files.verifier()),
        Entry(serve_dir),
        *(Entry(f"{serve_dir}/{name}", data=data) for name, data in runtime_files.server_files()),
        Entry("opt/smenv/smenv.json", data=plan_text.encode()),
        *tree_entries(root, MODEL_DIR if root.is_dir() else f"{MODEL_DIR}/{root.name}"),
    ]
    for code in job.code:
        entries += tree_entries(code, f"{CODE_DIR}/{code.name}")
    progress(f"building {tag}: the model's layers ({generated.facts.size_bytes / 2**20:.1f} MiB)")
    planned = model_layers.split(entries, "smenv: the model, its plan, the verifier and --code")
    made = model_layers.make_layers(planned, deps.info.diff_ids, scratch, engine.has_layers)
    spec = ImageSpec(
        env=tuple(runtime_env(generated.plan, bool(job.code))), user=f"{UID}:{UID}", workdir=HOME, cmd=CMD,
        labels=image_labels(generated.facts, generated.plan, generated.lock, generated.base.image),
        created=_created(generated), healthcheck=runtime_files.healthcheck_config(),
        exposed_ports=(f"{runtime_files.PORT}/tcp",),
    )
    installed = deps.info.diff_ids[len(deps.base.diff_ids):]
    config = image_config(deps.base.config, deps.base.diff_ids,
                          [*((d, VENV_HISTORY) for d in installed), *((m.diff_id, m.history) for m in made)],
                          spec, deps.base.architecture, deps.base.os)
    sent = {m.diff_id: m.path for m in made if m.path is not None}
    engine.load(docker_archive(Archive((ImageToLoad(config, (tag,)),), sent)), tag)
    info = engine.image_info(tag)
    if info is None or info.id != config.image_id:
        from smenv.errors import DockerError

        raise DockerError(f"docker load {tag}: the engine holds {info.id if info else 'nothing'}, not {config.image_id}")
    return RuntimeImage(tag, info.id, info.size_bytes, round(time.monotonic() - started, 2), None, deps.how,
                        deps.base_obtained)


def _log(log: Path, line: str) -> None:
    """One line in the build log (the install writes pip's output there too)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def _created(generated: Generated) -> str:
    """The images' creation time: the environment's as-of date, so the same inputs give the same config."""
    import os
    from datetime import datetime, timezone

    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():  # reproducible-builds.org's convention wins
        return datetime.fromtimestamp(int(os.environ["SOURCE_DATE_EPOCH"]), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return generated.plan.as_of


def write_build_context(generated: Generated, job: BuildJob, out: Path, progress: Progress) -> Path:
    """--context: the self-contained context `docker build` makes the same image from (wheels included)."""
    wheel_files = None
    if not job.online:
        from smenv.env.wheels import download_wheels

        wheel_files = download_wheels(generated.lock, generated.plan, progress=progress).files
    progress(f"writing the build context to {out}")
    return _write(generated, out, job.code, generated.dockerfile, wheel_files)


def build_dependency_image(engine: ContainerEngine, generated: Generated, job: BuildJob, context_dir: Path,
                           log: Path, progress: Progress) -> tuple[str, str]:
    """The dependency stage's image tag, built from the self-contained context unless the engine has it,
    and how the base image was had (ObtainedBase.how)."""
    obtained = _require_base_image(engine, generated, job.options.bases.registry, progress)
    deps_tag = dependency_image_tag(generated, obtained.info.id, job.online)
    if engine.image_exists(deps_tag):
        progress(f"dependencies: {deps_tag} is already built")
        return deps_tag, obtained.how
    # The dependency stage, from the self-contained context (wheels included, unless --online).
    wheel_files = None
    if not job.online:
        from smenv.env.wheels import download_wheels

        wheel_files = download_wheels(generated.lock, generated.plan, progress=progress).files
    full = _write(generated, context_dir, job.code, generated.dockerfile, wheel_files)
    progress(f"building the dependencies ({deps_tag})")
    engine.build(full, deps_tag, log, target="deps", progress=progress)
    return deps_tag, obtained.how


def build_runtime_image(engine: ContainerEngine, generated: Generated, job: BuildJob, deps_tag: str, tag: str,
                        context_dir: Path, log: Path, progress: Progress, base_obtained: str = "") -> RuntimeImage:
    """The runtime stage, FROM the dependency image: its context is the model and a few small files,
    so a rebuild sends kilobytes, not the wheels, to the engine."""
    runtime = render_dockerfile(
        generated.facts, generated.plan, generated.lock, base_image=generated.base.image,
        install_python=generated.base.install_python, offline=not job.online, has_code=bool(job.code),
        deps_image=deps_tag,
    )
    context = _write(generated, context_dir, job.code, runtime, None)
    progress(f"building {tag}")
    result = engine.build(context, tag, log, progress=progress)
    info = engine.image_info(tag)
    return RuntimeImage(tag, result.image_id, info.size_bytes if info else 0, result.seconds, context,
                        base_obtained=base_obtained)


def verify_built_image(engine: ContainerEngine, tag: str, sandbox: Sandbox, progress: Progress,
                       sample_input: Path | None = None) -> Verdict:
    """Load the model and call each signature (the verifier), then, if it loads, run the image as deployed
    and call it through its served API (verify/serving.py). A load failure keeps the verifier's diagnosis."""
    from smenv.verify import serving
    from smenv.verify.runner import verify_image

    verdict = verify_image(engine, tag, sandbox, sample_input=sample_input, progress=progress)
    if not verdict.ok:
        return verdict
    served = serving.check_serving(engine, tag, sandbox, sample_input, progress)
    return replace(verdict, ok=served.ok, serve=served)


def fix_packages(verdict: Verdict | None) -> tuple[str, ...]:
    """The packages a failed verification's diagnosis says to add; empty when the fix is not mechanical."""
    if verdict and not verdict.ok and verdict.diagnosis:
        return verdict.diagnosis.fix_packages
    return ()


def fix_and_rebuild(job: BuildJob, tag: str, added: tuple[str, ...], engine: ContainerEngine, sandbox: Sandbox,
                    progress: Progress) -> Built:
    """--fix: the whole build once more with `added` (under the same tag), never fixing again."""
    progress(f"--fix: rebuilding with {', '.join(added)}")
    options = replace(job.options, extra_packages=job.options.extra_packages + added)
    # As before the split: the rebuild keeps its context in a temporary directory, not in --context.
    again = _build(replace(job, options=options, tag=tag, context_dir=None), engine, sandbox, False, progress)
    return replace(again, fixed=added)


def dependency_image_tag(generated: Generated, base_id: str, online: bool) -> str:
    """The dependency stage's image, named by what decides its contents: lock, base image, smenv."""
    import hashlib

    # "venv-layer": the base's layers plus one reproducible /opt/venv layer (docker/install.py), not the
    # classic builder's dependency stage, which held the wheels too.
    key = f"{generated.lock.digest}|{base_id}|{smenv.__version__}|{'online' if online else 'offline'}|venv-layer"
    return f"smenv-deps:py{generated.lock.python}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _write(generated: Generated, out: Path, code: tuple[Path, ...], dockerfile: str, wheel_files) -> Path:
    root = Path(generated.facts.model_root)
    return write_context(
        out,
        ContextFiles(
            dockerfile=dockerfile,
            lock_text=generated.lock.text,
            plan_json=generated.plan_json,
            model_root=root,
            code_paths=tuple(code),
            wheel_files=wheel_files,
        ),
    )


def _require_base_image(engine: ContainerEngine, generated: Generated, registry: str | None,
                        progress: Progress = lambda msg: None) -> ObtainedBase:
    """The base image: the engine's, else pulled, else built from Debian (docker/obtain_base.py)."""
    from smenv.docker.obtain_base import debian_builder, obtain_base_image

    obtained = obtain_base_image(
        engine, generated.base_image, None if generated.base.install_python else generated.lock.python,
        registry=registry, build_from_debian=debian_builder(engine), progress=progress,
    )
    if obtained.how != "on the engine":
        progress(f"base image: {generated.base_image} {obtained.how}")
    return obtained


def _refuse_credentials_online(requirements: Path | None) -> None:
    from smenv.errors import RequirementsError

    if requirements is None:
        return
    index = parse_requirements(requirements).index
    if _carries_credentials(index.index_url, *index.extra_index_urls):
        raise RequirementsError(
            "an index URL carries credentials; --online would bake them into a layer. "
            "Build without --online: the host downloads the wheels and no credential reaches the image",
            requirements,
        )


def _carries_credentials(*urls: str | None) -> bool:
    """True when a URL has user info (user:password@host): it must never reach a Dockerfile."""
    return any(url and "@" in url.split("//", 1)[-1].split("/", 1)[0] for url in urls)
