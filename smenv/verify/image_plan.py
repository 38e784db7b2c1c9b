"""The plan an image carries (smenv.json, made by smenv.pipeline), read once into types for diagnosis.

Reading is defensive: a dry-run plan has no lock, an image from an older smenv may lack a key, and a
missing value means "unknown", never an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion, Version

from smenv.env import companion_pins, releases
from smenv.env.releases import Release
from smenv.model.facts import CustomObject


@dataclass(frozen=True)
class ImagePlan:
    tf: str  # the image's TensorFlow version; "unknown" when the plan does not say
    python: str | None
    keras_major: int | None
    legacy_keras: bool  # Keras 2 through tf-keras on a Keras 3 TensorFlow
    locked: dict[str, str] = field(default_factory=dict)  # lower-cased package name -> version
    code: tuple[str, ...] = ()  # --code modules and packages in the image, without .py
    imports: tuple[str, ...] = ()  # modules the verifier imports before loading
    model_tensorflow: str | None = None  # the TensorFlow that wrote the model, when it records one
    model_keras: str | None = None  # the Keras that saved it, when it records one
    model_size_bytes: int | None = None
    objects: tuple[CustomObject, ...] = ()  # the model's custom objects
    model_builder: str | None = None  # --model-builder MODULE:FUNCTION of a weights-only file

    @classmethod
    def from_json(cls, plan: dict[str, Any]) -> ImagePlan:
        env = plan.get("environment") or {}
        model = plan.get("model") or {}
        image = plan.get("image") or {}
        return cls(
            tf=env.get("tensorflow_version") or "unknown",
            python=env.get("python"),
            keras_major=env.get("keras_major"),
            legacy_keras=bool(env.get("legacy_keras")),
            locked={k.lower(): v for k, v in ((plan.get("lock") or {}).get("packages") or {}).items()},
            code=tuple(re.sub(r"\.py$", "", c) for c in image.get("code") or []),
            imports=tuple(image.get("imports") or []),
            model_tensorflow=model.get("tensorflow_version"),
            model_keras=model.get("keras_version"),
            model_size_bytes=model.get("size_bytes"),
            model_builder=env.get("model_builder"),
            objects=tuple(
                CustomObject(o.get("class_name") or "", o.get("module"), o.get("registered_name"), o.get("kind") or "class")
                for o in model.get("custom_objects") or []
            ),
        )

    @property
    def release(self) -> Release | None:
        return releases.get(self.tf)

    @property
    def keras3(self) -> bool:
        """The image loads with Keras 3."""
        return self.keras_major == 3 and not self.legacy_keras

    def requirement(self, package: str) -> str | None:
        """`package` pinned to go with the image's TensorFlow; None when no release of it does."""
        release = self.release
        if release is None:
            return package
        spec = companion_pins.specifier(package, release)
        return None if spec is None else package + spec

    def find_object(self, name: str) -> CustomObject | None:
        bare = name.split(">")[-1]  # registered names are "package>Name"
        for o in self.objects:
            if name in (o.class_name, o.registered_name) or o.class_name == bare:
                return o
        return None

    def producer_release(self) -> str | None:
        """The release that wrote the model, when it is newer than the image's TensorFlow."""
        if not self.model_tensorflow:
            return None
        try:
            wrote = releases.for_producer(self.model_tensorflow).release.version
            return wrote if Version(wrote) > Version(self.tf) else None
        except (releases.UnknownRelease, InvalidVersion):
            return None

    def keras3_release(self) -> str:
        """A TensorFlow release whose Keras 3 reads this model."""
        kv = self.model_keras or ""
        if kv.startswith("3."):
            try:
                return releases.for_keras(kv).release.version
            except releases.UnknownRelease:
                pass
        first = next((r.version for r in releases.table() if r.keras_major == 3), "2.16.1")
        return f"{first} or newer"
