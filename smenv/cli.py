"""The `smenv` command line: parse options, call the core, hand the result to `console`.

Exit codes (also in the README):
  0 success · 1 internal error (a bug: please report it) · 2 usage error
  3 model not found · 4 invalid or unreadable model · 5 unsafe model file
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from smenv import __version__, console
from smenv.errors import SmenvError, Terminated, UsageError

app = typer.Typer(
    name="smenv",
    help=(
        "Read a TensorFlow/Keras model statically and turn it into a container environment that loads it.\n\n"
        "Start with `smenv inspect MODEL` to see what the model itself records: format, producer TensorFlow "
        "and Keras versions, signatures, every op, custom objects and companion packages."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of the readable view.")]
ModelArg = Annotated[
    Path,
    typer.Argument(
        help="A SavedModel directory, a TF Serving base directory (numeric version sub-directories), "
        "a `.keras` archive, or a legacy `.h5`/`.hdf5` file.",
        show_default=False,
    ),
]
ModelVersionOption = Annotated[
    Optional[int],
    typer.Option("--model-version", help="In a TF Serving base directory, the version to read (default: the highest)."),
]
TagsOption = Annotated[
    Optional[str],
    typer.Option("--tags", help="Comma-separated meta graph tags to read (default: the graph tagged `serve`, else the first)."),
]
RequirementsOption = Annotated[
    Optional[Path],
    typer.Option("--requirements", "-r", help="The training environment's requirements.txt (`-r`/`-c` includes and index options are honoured)."),
]
TfVersionOption = Annotated[
    Optional[str], typer.Option("--tf-version", help="Use this TensorFlow release instead of the one the model records.")
]
PythonOption = Annotated[
    Optional[str], typer.Option("--python", help="Python version, e.g. 3.11 (default: the newest the TensorFlow release supports).")
]
GpuOption = Annotated[bool, typer.Option("--gpu", help="Build for NVIDIA GPUs (the CUDA route the TensorFlow release needs).")]
BaseImageOption = Annotated[
    Optional[str], typer.Option("--base-image", help="Base image to build FROM (default: python:X.Y-slim-<debian>, see `smenv base`).")
]
BaseRegistryOption = Annotated[
    Optional[str],
    typer.Option("--base-registry", envvar="SMENV_BASE_REGISTRY", help="A registry or mirror (HOST[:PORT][/PATH]) that serves the official python images: tried before Docker Hub, and makes every Python's base obtainable."),
]
ExactOption = Annotated[
    bool,
    typer.Option("--exact", help="Use the model's own TensorFlow release or fail (exit 8); without it, a release this host cannot build is replaced by the nearest one that loads the model, said in the plan."),
]
UnsafeOption = Annotated[
    bool,
    typer.Option("--unsafe-deserialization", help="Load the model with Keras's safe_mode=False, so the Python bytecode of its Lambda layers runs in the image (Keras refuses it by default, exit 27). Only for a model whose origin you trust; the image is labelled org.smenv.keras.safe_mode=false."),
]
BuilderOption = Annotated[
    Optional[str],
    typer.Option("--model-builder", metavar="MODULE:FUNCTION", help="For a weights-only file (model.save_weights): a function in your --code that returns the model, built; the image calls it, then reads the weights into it with load_weights. Checked on the host without running it."),
]
AsOfOption = Annotated[
    Optional[str],
    typer.Option("--as-of", help="Resolve packages as of this date (YYYY-MM-DD; default: the model's save date, else the TensorFlow release date)."),
]
CodeOption = Annotated[
    Optional[list[Path]],
    typer.Option("--code", help="A module or package directory the model needs (custom layers); copied into the image and put on PYTHONPATH. Repeatable."),
]


@contextmanager
def _handled(as_json: bool):
    """Turn smenv's typed errors into one line and their exit code; never show a traceback."""
    try:
        yield
    except SmenvError as exc:
        # The contract is one line per error, but some messages quote a third-party error verbatim
        # (pip-requirements-parser's "cannot parse" carries the line and a caret on their own lines,
        # found by tests/test_fuzz.py): collapse any whitespace run so the CLI never prints more.
        exc.message = " ".join(exc.message.split())
        console.print_error(exc, as_json)
        raise typer.Exit(exc.exit_code) from None
    except Terminated:
        console.err.print("smenv: interrupted (SIGTERM)")
        raise typer.Exit(143) from None
    except KeyboardInterrupt:
        console.err.print("smenv: interrupted")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # a bug: say so plainly, keep the traceback for SMENV_DEBUG=1
        if os.environ.get("SMENV_DEBUG"):
            raise
        internal = SmenvError(f"internal error: {type(exc).__name__}: {exc} (rerun with SMENV_DEBUG=1 and report it)")
        console.print_error(internal, as_json)
        raise typer.Exit(1) from None


def _builder(spec: str | None, code: list[Path] | None):
    """--model-builder parsed and found in the --code modules (without running them), None when not
    given: a malformed or misnamed one is exit 2 before the engine is asked or anything is locked."""
    from smenv.model.builder import parse
    from smenv.pipeline import check_code

    if spec is None:
        return None
    builder = parse(spec)
    check_code(tuple(code or ()), builder)
    return builder


def _version_callback(value: bool) -> None:
    if value:
        console.out.print(f"smenv {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version.")
    ] = None,
) -> None:
    """smenv: make a TensorFlow/Keras model load anywhere."""


@app.command()
def inspect(
    model: ModelArg,
    as_json: JsonOption = False,
    model_version: ModelVersionOption = None,
    tags: TagsOption = None,
) -> None:
    """Show what a model records about itself, without TensorFlow.

    Reads only the model's metadata (never its variables), so it is fast on multi-gigabyte models and
    safe on untrusted ones: no model code is run.

    **Examples**

    `smenv inspect ./export/1` · `smenv inspect model.keras --json | jq .tensorflow_version` ·
    `smenv inspect ./serving_base --model-version 3`
    """
    from smenv.model.inspect import inspect_model

    with _handled(as_json):
        facts = inspect_model(model, version=model_version, tags=_tags(tags))
        if as_json:
            console.print_json(facts.to_json())
        else:
            console.show_facts(facts)


@app.command()
def generate(
    model: ModelArg,
    requirements: RequirementsOption = None,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Directory to write the build context to (default: ./smenv-build, or <model>-smenv-build beside the model when run inside it).", show_default=False),
    ] = None,
    gpu: GpuOption = False,
    tf_version: TfVersionOption = None,
    python: PythonOption = None,
    base_image: BaseImageOption = None,
    base_registry: BaseRegistryOption = None,
    exact: ExactOption = False,
    as_of: AsOfOption = None,
    code: CodeOption = None,
    unsafe_deserialization: UnsafeOption = False,
    model_builder: BuilderOption = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Download the locked wheels into the context, so `docker build` needs no network.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Resolve and print the plan; write nothing, lock nothing.")] = False,
    model_version: ModelVersionOption = None,
    tags: TagsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resolve the environment a model needs, lock it, and write a Docker build context.

    The model's own producer version decides the TensorFlow release; the training requirements add
    the rest. Every decision is printed with its reason and recorded in `smenv.json`. The context
    (Dockerfile, requirements.lock, the model, your `--code`, smenv.json) builds by hand with
    `docker build DIR`. The same inputs give byte-identical output; a failure leaves no directory.

    **Examples**

    `smenv generate ./export/1 -r requirements.txt -o build/` ·
    `smenv generate model.keras --gpu --dry-run` ·
    `smenv generate ./model --tf-version 2.15.1 --python 3.11 --json`
    """
    from smenv import pipeline
    from smenv.env.bases import BaseAvailability, registry_option
    from smenv.env.options import check as check_options
    from smenv.env.resolve import ResolveOptions
    from smenv.render.context import default_output

    with _handled(as_json):
        options = ResolveOptions(tf_version=tf_version, python=python, gpu=gpu, base_image=base_image, as_of=as_of,
                                 bases=BaseAvailability(registry=registry_option(base_registry)), exact=exact,
                                 unsafe_deserialization=unsafe_deserialization, model_builder=_builder(model_builder, code))
        check_options(python, as_of, tf_version)  # a mistyped value is exit 2 before any work
        with console.progress() as progress:
            result = pipeline.generate(
                pipeline.ModelInput(model, model_version, _tags(tags)),
                requirements,
                options,
                None if dry_run else (output or default_output(model)),
                code=tuple(code or ()),
                offline=offline,
                dry_run=dry_run,
                progress=progress,
            )
        if as_json:
            console.print_json(result.to_json())
        else:
            console.show_generated(result)


SandboxMemory = Annotated[str, typer.Option("--memory", help="Memory limit of the verification container (Docker syntax: 4g, 512m).")]
SandboxTimeout = Annotated[float, typer.Option("--timeout", help="Seconds the verification container may run.")]
SampleInputOption = Annotated[
    Optional[Path],
    typer.Option("--sample-input", help="An .npz file (numpy.savez) with one array named after each model input, fed to the model instead of input smenv makes up; checked on the host first."),
]


@app.command()
def build(
    model: ModelArg,
    requirements: RequirementsOption = None,
    tag: Annotated[Optional[str], typer.Option("--tag", "-t", help="Image name (default: smenv/<model>:<model digest>).")] = None,
    gpu: GpuOption = False,
    tf_version: TfVersionOption = None,
    python: PythonOption = None,
    base_image: BaseImageOption = None,
    base_registry: BaseRegistryOption = None,
    exact: ExactOption = False,
    as_of: AsOfOption = None,
    code: CodeOption = None,
    unsafe_deserialization: UnsafeOption = False,
    model_builder: BuilderOption = None,
    online: Annotated[
        bool, typer.Option("--online", help="Install from the index during the build instead of from wheels the host downloaded.")
    ] = False,
    fix: Annotated[bool, typer.Option("--fix", help="When the diagnosis names a missing package (a companion, an older NumPy), add it and rebuild once.")] = False,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Build only; do not load the model.")] = False,
    sample_input: SampleInputOption = None,
    context: Annotated[Optional[Path], typer.Option("--context", help="Also write the self-contained build context (Dockerfile, lock, wheels, model) here: `docker build DIR` makes the same files.")] = None,
    push: Annotated[bool, typer.Option("--push", help="Push the image under --tag (which names the registry) once it verified, with the Docker engine's credentials (docker login).")] = False,
    cache_registry: Annotated[Optional[str], typer.Option("--cache-registry", help="Share dependency images through this registry (host[:port]/path): pull the one for this lock instead of installing, push it after installing.")] = None,
    save: Annotated[Optional[Path], typer.Option("--save", help="Also write the image as a docker-archive file (docker load, skopeo, crane), once it verified.")] = None,
    memory: SandboxMemory = "4g",
    timeout: SandboxTimeout = 600.0,
    model_version: ModelVersionOption = None,
    tags: TagsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Build a Docker image that loads the model, and prove it: the main job.

    Resolves and locks the environment (as `smenv generate`), downloads the locked wheels on the host
    (with your pip configuration; no credential reaches the image), builds with the Docker engine,
    then loads the model in a sandboxed container (no network, read-only, unprivileged) and calls
    each signature once. On failure it says why and what to change; the exit code names the class
    of failure (see README).

    **Examples**

    `smenv build ./export/1 -r requirements.txt` ·
    `smenv build model.keras --code src/my_layers --tag registry.local/ml/model:1` ·
    `smenv build ./model --fix --json` ·
    `smenv build text_model.h5 --sample-input tokens.npz` ·
    `smenv build weights.h5 --code model_def.py --model-builder model_def:build_model`
    """
    from smenv import pipeline
    from smenv.docker.engine import Sandbox
    from smenv.env.bases import BaseAvailability, registry_option
    from smenv.env.options import check as check_options
    from smenv.env.resolve import ResolveOptions

    with _handled(as_json):
        options = ResolveOptions(tf_version=tf_version, python=python, gpu=gpu, base_image=base_image, as_of=as_of,
                                 bases=BaseAvailability(registry=registry_option(base_registry)), exact=exact,
                                 unsafe_deserialization=unsafe_deserialization, model_builder=_builder(model_builder, code))
        check_options(python, as_of, tf_version)  # a mistyped value is exit 2 before any work
        if sample_input is not None:  # before minutes of locking and building
            _check_sample(sample_input, model, model_version, tags)
        with console.progress() as progress:
            built = pipeline.build(
                pipeline.ModelInput(model, model_version, _tags(tags)),
                requirements,
                options,
                tag=tag,
                code=tuple(code or ()),
                online=online,
                sandbox=Sandbox(memory=memory, timeout_s=timeout, gpu=gpu),
                verify=not no_verify,
                fix=fix,
                context_dir=context,
                sample_input=sample_input,
                progress=progress,
                push=push,
                cache_registry=cache_registry,
                save=save,
            )
        if as_json:
            console.print_json(built.to_json())
        else:
            console.show_built(built)
        raise typer.Exit(built.exit_code)


@app.command()
def verify(
    image: Annotated[str, typer.Argument(help="An image built by smenv.", show_default=False)],
    model: Annotated[
        Optional[Path], typer.Argument(help="Load this model instead of the one in the image (mounted read-only).", show_default=False)
    ] = None,
    sample_input: SampleInputOption = None,
    gpu: Annotated[bool, typer.Option("--gpu", help="Give the container the host's GPUs and report the ones TensorFlow sees.")] = False,
    memory: SandboxMemory = "4g",
    timeout: SandboxTimeout = 600.0,
    as_json: JsonOption = False,
) -> None:
    """Load the model in an existing smenv image again, and call it once.

    Runs in the same sandbox as `smenv build`: no network, read-only root filesystem, unprivileged
    user, no capabilities, memory and time limits. Exit code 0 when the model loads and answers.
    """
    from smenv.docker.engine import Sandbox, connect
    from smenv.verify.runner import verify_image

    with _handled(as_json):
        if sample_input is not None:  # before the engine is asked anything
            from smenv.verify.sample import check_sample_input

            check_sample_input(sample_input)
        with console.progress() as progress:
            verdict = verify_image(connect(), image, Sandbox(memory=memory, timeout_s=timeout, gpu=gpu), model, sample_input, progress)
        if as_json:
            console.print_json(verdict.to_json())
        else:
            console.show_verdict(verdict)
        raise typer.Exit(verdict.exit_code)


@app.command()
def serve(
    target: Annotated[str, typer.Argument(help="A model to build and serve (as `smenv build`), or an image smenv built.", show_default=False)],
    port: Annotated[int, typer.Option("--port", "-p", help="Serve on 127.0.0.1:PORT (the container listens on 8501).")] = 8501,
    requirements: RequirementsOption = None,
    code: CodeOption = None,
    unsafe_deserialization: UnsafeOption = False,
    model_builder: BuilderOption = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Leave the server running and print how to stop it.")] = False,
    memory: SandboxMemory = "4g",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the model to load and warm up.")] = 600.0,
) -> None:
    """Run the model server of an smenv image here, and print a request for each protocol.

    Given a model, builds its image first (as `smenv build --no-verify`). The container runs as in
    production: its own command and user, read-only root filesystem, no capabilities; its port is
    published on 127.0.0.1 only. In the foreground, the server's log follows until Ctrl-C, which stops
    it with SIGTERM (in-flight requests drain) and removes the container.

    **Examples**

    `smenv serve examples/half_plus_two` · `smenv serve smenv/half_plus_two:48de97e857aa --port 9000 --detach`
    """
    from smenv import serve_locally
    from smenv.docker.engine import Sandbox, connect

    with _handled(False):
        image = target
        is_model = Path(target).exists()
        for flag, given in (("--unsafe-deserialization", unsafe_deserialization), ("--model-builder", model_builder)):
            if given and not is_model:
                raise UsageError(f"{flag} applies when serve builds a model: {target} is an image, whose smenv.json already decides")
        builder = _builder(model_builder, code)
        engine = connect()
        if is_model:
            from smenv import pipeline
            from smenv.env.resolve import ResolveOptions

            with console.progress() as progress:
                built = pipeline.build(pipeline.ModelInput(Path(target)), requirements,
                                       ResolveOptions(unsafe_deserialization=unsafe_deserialization, model_builder=builder),
                                       code=tuple(code or ()), verify=False, engine=engine, progress=progress)
            image = built.image
            console.out.print(f"Image {image} ({built.image_id[:19]})")
        with console.progress() as progress:
            running = serve_locally.start(engine, image, port, Sandbox(memory=memory, timeout_s=timeout), progress)
        console.show_serving(running, detach)
        if detach:
            return
        try:
            for chunk in running.service.container.logs(stream=True, follow=True):
                console.err.print(chunk.decode("utf-8", "replace"), end="", markup=False, highlight=False)
            console.out.print(serve_locally.stopped(running, memory))
        except KeyboardInterrupt:
            console.err.print("smenv: stopping (SIGTERM: in-flight requests drain)")
            code_after = running.service.stop()
            console.err.print(f"smenv: stopped, exit {code_after}; container removed")
        finally:
            running.service.remove()


@app.command()
def base(
    python: Annotated[str, typer.Option("--python", help="Python version: 3.9 (bullseye), 3.11 (bookworm) or 3.13 (trixie).")] = "3.11",
    tag: Annotated[Optional[str], typer.Option("--tag", help="Tag for the image (default: python:X.Y-slim-<debian>, the name generated Dockerfiles use).")] = None,
    mirror: Annotated[Optional[str], typer.Option("--mirror", help="Debian mirror URL (default: the host's).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when the tag exists.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Build a minimal Debian-based Python base image from Debian packages, for hosts with no registry.

    Runs debootstrap (root, about a minute; the root filesystem is cached) and imports the result
    under the tag the generated Dockerfiles use, so `smenv build` finds its base without pulling.
    """
    from smenv.docker.base_image import build_base_image
    from smenv.docker.engine import connect
    from smenv.env.options import check_python

    with _handled(as_json):
        check_python(python)  # a mistyped value is exit 2, before the engine is asked
        with console.progress() as progress:
            result = build_base_image(connect(), python, tag=tag, mirror=mirror, force=force, progress=progress)
        if as_json:
            console.print_json(result.to_json())
        else:
            verb = "Reused" if result.reused else "Built"
            console.out.print(f"{verb} {result.tag}: Python {result.python_full} on Debian {result.suite}, {result.size_bytes / 2**20:.0f} MiB")


def _check_sample(path: Path, model: Path, model_version: int | None, tags: str | None) -> None:
    """`build --sample-input`: a readable .npz (no pickles) whose arrays are named after the model's inputs."""
    from smenv.model.inspect import inspect_model
    from smenv.verify.inputs import check_sample_names
    from smenv.verify.sample import check_sample_input

    arrays = check_sample_input(path)
    facts = inspect_model(model, version=model_version, tags=_tags(tags))
    check_sample_names(path, facts.to_json(), [a.name for a in arrays])


def _tags(text: str | None) -> tuple[str, ...] | None:
    return tuple(t.strip() for t in text.split(",") if t.strip()) if text else None


if __name__ == "__main__":  # pragma: no cover
    app(prog_name="smenv")
