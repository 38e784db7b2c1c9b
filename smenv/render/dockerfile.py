"""Render the Dockerfile from templates/Dockerfile.j2. The template owns the text; this module
only decides what goes in. The base image is the resolver's choice (smenv.env.resolve.choose_base_image)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

import smenv
from smenv.env.lock import Lock
from smenv.env.plan import EnvironmentPlan
from smenv.model.facts import ModelFacts
from smenv.render import runtime_files

UID = 10001  # an unprivileged user that exists in no base image, so it owns nothing by accident
MODEL_DIR = "/opt/smenv/model"



@cache
def _environment() -> jinja2.Environment:
    packaged = Path(smenv.__file__).parent / "templates"  # in the wheel (force-included)
    checkout = Path(smenv.__file__).parents[1] / "templates"  # a source checkout or editable install
    folder = packaged if packaged.is_dir() else checkout
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty string
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


VENV = "/opt/venv"
HOME = "/home/smenv"
CMD = runtime_files.CMD  # the model server; the verifier runs with its own command (smenv/verify/runner.py)
CODE_DIR = "/opt/smenv/code"
# pip's settings while installing: no cache in the image, no questions, no version check.
INSTALL_ENV = (("PIP_NO_CACHE_DIR", "1"), ("PIP_DISABLE_PIP_VERSION_CHECK", "1"), ("PIP_NO_INPUT", "1"))


def install_script(python: str, offline: bool, index_options: list[str]) -> str:
    """The shell commands that install requirements.lock (and wheels/) from /tmp/smenv into /opt/venv.

    One text for the Dockerfile's RUN and smenv's own install container (docker/install.py), so both
    give the same files. Byte code is compiled once, after the install, as unchecked-hash .pyc files
    (Python >= 3.7): they record the source's hash, not the install time, so the same wheels give the
    same bytes; pip's own timestamped ones are dropped first. PYTHONHASHSEED fixes set ordering in them.
    """
    source = "--no-index --find-links /tmp/smenv/wheels" if offline else " ".join(index_options)
    pip = (
        f"{VENV}/bin/pip install --no-compile --require-hashes --no-deps --only-binary :all: "
        + (source + " " if source else "") + "-r /tmp/smenv/requirements.lock"
    )
    steps = [f"python3 -m venv {VENV}", pip, f"find {VENV} -name __pycache__ -type d -prune -exec rm -rf {{}} +"]
    if tuple(int(x) for x in python.split(".")[:2]) >= (3, 7):
        steps.append(
            f"PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 {VENV}/bin/python -m compileall -f -q -j 0 "
            f"--invalidation-mode unchecked-hash {VENV}/lib > /dev/null"
        )
    steps.append("rm -rf /tmp/smenv")
    return " \\\n && ".join(steps)


def runtime_env(plan: EnvironmentPlan, has_code: bool) -> list[tuple[str, str]]:
    """The image's environment over the base's (the Dockerfile's ENV lines, and the assembled config)."""
    env = [
        ("PATH", f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        ("VIRTUAL_ENV", VENV),
        ("HOME", HOME),
        ("PYTHONUNBUFFERED", "1"),
        *plan.env,
    ]
    # /opt/smenv for `python -m serve` (and the verifier's own module); user modules (--code) after it.
    env.append(("PYTHONPATH", f"{runtime_files.RUNTIME_DIR}:{CODE_DIR}" if has_code else runtime_files.RUNTIME_DIR))
    return env


def serving_name(facts: ModelFacts) -> str:
    """The model's name in the served URLs (/v1/models/NAME, /v2/models/NAME) and the image's label:
    the path's last part, a model file's suffix dropped, reduced to characters a URL path keeps as they are."""
    import re

    path = Path(facts.path).resolve()
    name = path.stem if path.suffix.lower() in (".keras", ".h5", ".hdf5") else path.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"


def image_labels(facts: ModelFacts, plan: EnvironmentPlan, lock: Lock, base_image: str) -> dict[str, str]:
    """What went into the image, as labels: OCI's own keys and smenv's."""
    name = Path(facts.path).resolve().name or "model"
    labels = {
        "org.opencontainers.image.title": f"smenv: {name}",
        "org.opencontainers.image.description": f"{facts.format} model with TensorFlow {plan.tensorflow_version}, built by smenv",
        "org.opencontainers.image.base.name": base_image,
        "org.opencontainers.image.version": facts.digest.split(":")[-1][:12],
        "org.smenv.version": smenv.__version__,
        "org.smenv.tensorflow.version": plan.tensorflow_version,
        "org.smenv.tensorflow.package": plan.tensorflow_package,
        "org.smenv.python.version": lock.python,
        "org.smenv.device": plan.device,
        "org.smenv.model.format": facts.format,
        "org.smenv.model.name": serving_name(facts),
        "org.smenv.model.digest": facts.digest,
        "org.smenv.lock.digest": lock.digest,
    }
    if not plan.keras_safe_mode:  # for whoever audits what runs: this image runs the model's saved bytecode
        labels["org.smenv.keras.safe_mode"] = "false"
    if plan.model_builder:  # the architecture comes from the user's code, not from the model file
        labels["org.smenv.model.builder"] = plan.model_builder
    return labels


def render_dockerfile(facts: ModelFacts, plan: EnvironmentPlan, lock: Lock, *, base_image: str, install_python: bool,
                      offline: bool, has_code: bool, deps_image: str | None = None) -> str:
    """The Dockerfile. With `deps_image`, stage 1 is that already-built image instead of the install."""
    name = Path(facts.path).resolve().name or "model"
    return _environment().get_template("Dockerfile.j2").render(
        smenv_version=smenv.__version__,
        model_name=name,
        model_format=facts.format,
        tf_version=plan.tensorflow_version,
        tf_package=plan.tensorflow_package,
        python=lock.python,
        device=plan.device,
        as_of=plan.as_of,
        base_image=base_image,
        install_python=install_python,
        offline=offline,
        deps_image=deps_image,
        install_env=INSTALL_ENV,
        install_script=install_script(lock.python, offline, index_options(plan) if not offline else []),
        env=runtime_env(plan, has_code),
        uid=UID,
        home=HOME,
        cmd=list(CMD),
        port=runtime_files.PORT,
        probe=list(runtime_files.PROBE),
        health=dict(interval=runtime_files.HEALTH_INTERVAL_S, timeout=runtime_files.HEALTH_TIMEOUT_S,
                    start=runtime_files.HEALTH_START_S, retries=runtime_files.HEALTH_RETRIES),
        code=has_code,
        code_dir=CODE_DIR,
        labels=image_labels(facts, plan, lock, base_image),
    )


def index_options(plan: EnvironmentPlan) -> list[str]:
    """pip's options for the requirements' own index (--online builds only: never with credentials)."""
    options = [f"--index-url {plan.index.index_url}"] if plan.index.index_url else []
    return options + [f"--extra-index-url {u}" for u in plan.index.extra_index_urls]
