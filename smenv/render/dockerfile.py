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


def render_dockerfile(facts: ModelFacts, plan: EnvironmentPlan, lock: Lock, *, base_image: str, install_python: bool,
                      offline: bool, has_code: bool, deps_image: str | None = None) -> str:
    """The Dockerfile. With `deps_image`, stage 1 is that already-built image instead of the install."""
    index_options = []
    if not offline:
        if plan.index.index_url:
            index_options.append(f"--index-url {plan.index.index_url}")
        index_options += [f"--extra-index-url {u}" for u in plan.index.extra_index_urls]
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
        index_options=index_options,
        env=list(plan.env),
        uid=UID,
        code=has_code,
        model_dir=MODEL_DIR,
        title=f"smenv: {name}",
        model_digest=facts.digest,
        model_digest_short=facts.digest.split(":")[-1][:12],
        lock_digest=lock.digest,
    )
