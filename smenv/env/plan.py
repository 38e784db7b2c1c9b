"""The resolved environment: what goes into the image, and why. Frozen and JSON-ready."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from smenv.env.requirements import IndexOptions


@dataclass(frozen=True)
class Decision:
    topic: str  # tensorflow, python, device, keras, companion:<name>, as_of, base_image, requirement:<name>
    choice: str
    reason: str
    level: str = "info"  # info | warning


@dataclass(frozen=True)
class Package:
    requirement: str  # a PEP 508 line handed to the locker
    origin: str  # "model", "requirements <file>:<line>", "companion rule", "smenv"
    reason: str = ""
    # Why the model loads without it, when it does: the locker then leaves it out rather than fail
    # when it cannot be locked (env/lock.py, lock_plan), and says so.
    optional: str = ""

    @property
    def name(self) -> str:
        return requirement_name(self.requirement)


def requirement_name(requirement: str) -> str:
    """The canonical project name of a PEP 508 line."""
    return canonicalize_name(Requirement(requirement).name)


@dataclass(frozen=True)
class EnvironmentPlan:
    tensorflow_version: str
    tensorflow_package: str  # tensorflow-cpu | tensorflow | tensorflow[and-cuda] | tensorflow-gpu
    python_candidates: tuple[str, ...]  # newest first; the locker takes the first that resolves
    python_forced: bool
    device: str  # cpu | gpu
    gpu_route: str | None
    cuda: str | None
    cudnn: str | None
    keras_major: int
    legacy_keras: bool  # TF_USE_LEGACY_KERAS=1 with tf-keras on TF >= 2.16
    loader: str  # saved_model | keras
    base_image: str | None  # given with --base-image; else choose_base_image() decides once the lock picks the Python
    as_of: str  # ISO 8601 UTC: packages uploaded later are not considered
    cutoff_exempt: tuple[str, ...]  # packages pinned on purpose, taken whatever their upload date
    packages: tuple[Package, ...]
    constraints: tuple[str, ...]
    excludes: tuple[str, ...]  # package names dropped from resolution (tensorflow when tensorflow-cpu stands in)
    index: IndexOptions = field(default_factory=IndexOptions)
    env: tuple[tuple[str, str], ...] = ()
    decisions: tuple[Decision, ...] = ()
    # The model's own release, when it cannot be built on this host and the plan uses the nearest one
    # that loads the model instead (env/fallback.py); None when the plan is exact.
    exact_release: str | None = None
    # False only with --unsafe-deserialization: Keras then loads the model with safe_mode=False, so
    # the Lambda bytecode saved in it runs in the image.
    keras_safe_mode: bool = True
    # --model-builder MODULE:FUNCTION for a weights-only file: the image calls it for the model, then
    # load_weights(FILE). None for every other model (and then not written).
    model_builder: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["index"] = self.index.redacted()  # smenv.json goes into the image: never a credential
        for package in data["packages"]:  # said only where it applies: smenv.json, and so the image, stays as it was
            if not package["optional"]:
                del package["optional"]
        if self.keras_safe_mode:  # the default is not written: smenv.json, and so the image, stays as it was
            del data["keras_safe_mode"]
        if self.model_builder is None:
            del data["model_builder"]
        return data

    def with_decision(self, decision: Decision) -> EnvironmentPlan:
        """This plan with `decision` recorded: it takes the place of one on the same topic, else comes last."""
        topics = [d.topic for d in self.decisions]
        if decision.topic in topics:
            i = topics.index(decision.topic)
            return replace(self, decisions=self.decisions[:i] + (decision,) + self.decisions[i + 1:])
        return replace(self, decisions=self.decisions + (decision,))
