"""What smenv knows about a model after reading it: frozen, typed, and JSON-ready.

Every later stage (environment resolution, rendering, verification) takes a `ModelFacts` and
never re-reads the model files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Format names, also the values of the JSON `format` key.
SAVEDMODEL = "savedmodel"  # a SavedModel with no Keras metadata: tf.saved_model.load
KERAS_SAVEDMODEL = "keras-savedmodel"  # a tf.keras (Keras 2) SavedModel: tf.keras.models.load_model
KERAS = "keras"  # a `.keras` zip archive
H5 = "h5"  # a legacy HDF5 file written by Keras


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str | None
    shape: tuple[int | None, ...] | None  # None: unknown rank; None inside: unknown dimension
    tensor_name: str | None = None  # the graph tensor behind a SavedModel signature key
    kind: str = "dense"  # dense | sparse | composite


@dataclass(frozen=True)
class Signature:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    method_name: str | None = None


@dataclass(frozen=True)
class InputHint:
    """What a valid value of one input looks like, as far as the model's files say (smenv/model/input_hints.py)."""

    name: str
    dtype: str | None
    shape: tuple[int | None, ...] | None
    values: str  # normal | zeros | ids | text | example: what the verifier feeds (VALUE_KINDS in input_hints.py)
    low: int | None = None  # values "ids": integers in [low, high)
    high: int | None = None
    because: str | None = None  # the fact behind `values`, e.g. "feeds Embedding 'embedding' (input_dim 1188)"


@dataclass(frozen=True)
class CallHint:
    """How the in-image verifier should make up an input for one signature ("keras_model" for a Keras model)."""

    signature: str
    inputs: tuple[InputHint, ...]
    lengths: tuple[int, ...] = ()  # sizes for unknown non-batch dimensions, tried in order until a call succeeds
    because: str | None = None  # why the first length, when the layers set it


@dataclass(frozen=True)
class MetaGraph:
    tags: tuple[str, ...]
    tensorflow_version: str | None
    tensorflow_git_version: str | None
    signature_names: tuple[str, ...]
    op_count: int
    graph_producer: int | None = None


@dataclass(frozen=True)
class CustomObject:
    class_name: str
    module: str | None
    registered_name: str | None
    kind: str = "class"  # class | function | lambda
    count: int = 1


@dataclass(frozen=True)
class CompanionPackage:
    name: str
    evidence: tuple[str, ...]
    ops: tuple[str, ...] = ()  # the graph's ops it registers; () when only a Keras class names it


@dataclass(frozen=True)
class ModelFacts:
    path: str
    format: str
    tensorflow_version: str | None
    tensorflow_git_version: str | None
    keras_version: str | None
    saved_at: str | None
    meta_graphs: tuple[MetaGraph, ...]
    signatures: tuple[Signature, ...]
    ops: dict[str, int]
    custom_objects: tuple[CustomObject, ...]
    companion_packages: tuple[CompanionPackage, ...]
    weights_only: bool
    digest: str
    size_bytes: int
    model_root: str  # the directory or file actually read (a version sub-directory when one was chosen)
    keras_backend: str | None = None
    layers: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    call_hints: tuple[CallHint, ...] = ()  # for the verifier's synthetic input, read from configs and signatures
    # For a weights-only .h5: "keras2-weights" (tf.keras save_weights, records its Keras version) or
    # "keras3-weights" (Keras 3 .weights.h5, records none); None for every other model (and then not written).
    weights_layout: str | None = None

    @property
    def lambda_layers(self) -> int:
        """How many Lambda layers hold saved Python bytecode (load_risks.py warns, resolve.py says so)."""
        return sum(o.count for o in self.custom_objects if o.kind == "lambda")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.weights_layout is None:  # said only where it applies: smenv.json, and so the image, stays as it was
            del data["weights_layout"]
        # Tuples become lists in JSON anyway; spell the shapes out so `null` means "unknown".
        return {"schema": 1, **data}
