"""`inspect_model(path)`: read every fact later stages need from the model files alone.

Never imports TensorFlow or Keras, never loads variables or weights, never runs model code.
"""

from __future__ import annotations

from pathlib import Path

from smenv.model import companions, input_hints, keras_config
from smenv.model.digest import model_digest
from smenv.model.facts import H5, KERAS, KERAS_SAVEDMODEL, SAVEDMODEL, ModelFacts
from smenv.model.hdf5_file import read_h5
from smenv.model.keras_archive import read_keras_archive
from smenv.model.locate import locate
from smenv.model.savedmodel import GraphContents, read_keras_metadata, read_meta_graphs

# Identifiers of a whole Keras model in keras_metadata.pb / the object graph
# (tf_keras/src/saving/legacy/saved_model/constants.py).
KERAS_MODEL_IDENTIFIERS = ("_tf_keras_model", "_tf_keras_network", "_tf_keras_sequential")


def inspect_model(path: Path, version: int | None = None, tags: tuple[str, ...] | None = None) -> ModelFacts:
    where = locate(path, version)
    notes = [where.note] if where.note else []
    if where.kind == SAVEDMODEL:
        partial = _savedmodel(where.root, tags, notes)
    elif where.kind == KERAS:
        partial = _keras_archive(where.root, notes)
    else:
        partial = _h5(where.root, notes)
    digest, size = model_digest(where.root)
    objects = partial.pop("custom_objects")
    for obj in objects:
        if obj.kind == "lambda":
            notes.append(
                "Lambda layer(s) hold Python bytecode: it runs only inside the verification container, "
                "and needs the Python minor version the model was saved with"
            )
            break
    return ModelFacts(
        path=str(path),
        model_root=str(where.root),
        digest=digest,
        size_bytes=size,
        custom_objects=objects,
        companion_packages=companions.detect(partial["ops"], objects),
        notes=tuple(notes),
        **partial,
    )


def _savedmodel(root: Path, tags: tuple[str, ...] | None, notes: list[str]) -> dict:
    graphs = read_meta_graphs(root)
    primary = _choose_graph(graphs, tags, notes)
    keras_nodes = read_keras_metadata(root)
    if keras_nodes is None and any(ident in KERAS_MODEL_IDENTIFIERS for ident, _ in primary.keras_objects):
        keras_nodes = primary.keras_objects  # TF 2.0-2.4 kept the Keras metadata in the object graph
    keras_version = backend = None
    config = keras_config.ConfigFacts()
    hints = input_hints.signature_hints(primary.signatures, primary.ops)
    if keras_nodes:
        model_meta = next((meta for ident, meta in keras_nodes if ident in KERAS_MODEL_IDENTIFIERS), None)
        if model_meta is not None:
            keras_version = _str(model_meta.get("keras_version"))
            backend = _str(model_meta.get("backend"))
            keras_config.scan(model_meta, config)
            # tf.keras loads it and calls the Keras model, whose config is in the metadata.
            keras = input_hints.keras_hint(model_meta, keras_config.model_signature(model_meta))
            hints = ((keras,) if keras else ()) + hints
        seen = {o.class_name for o in config.custom_objects}
        for _, meta in keras_nodes:
            # Layers of subclassed models are not in the model config; their nodes still name them.
            single = keras_config.scan({"class_name": meta.get("class_name")} if "class_name" in meta else {})
            for obj in single.custom_objects:
                if obj.class_name not in seen:
                    seen.add(obj.class_name)
                    config.custom_objects[obj] += 1
    return {
        "format": KERAS_SAVEDMODEL if keras_nodes else SAVEDMODEL,
        "tensorflow_version": primary.tensorflow_version,
        "tensorflow_git_version": primary.tensorflow_git_version,
        "keras_version": keras_version,
        "keras_backend": backend,
        "saved_at": None,
        "meta_graphs": tuple(g.summary() for g in graphs),
        "signatures": tuple(primary.signatures),
        "ops": dict(sorted(primary.ops.items())),
        "custom_objects": config.objects(),
        "layers": dict(sorted(config.layers.items())),
        "weights_only": False,
        "call_hints": hints,
    }


def _choose_graph(graphs: list[GraphContents], tags: tuple[str, ...] | None, notes: list[str]) -> GraphContents:
    if tags:
        for g in graphs:
            if set(g.tags) == set(tags):
                return g
        from smenv.errors import ModelNotFound

        available = "; ".join(",".join(g.tags) for g in graphs)
        raise ModelNotFound(f"no meta graph tagged {','.join(tags)} (available: {available})")
    for g in graphs:
        if "serve" in g.tags:
            return g
    notes.append(f"no meta graph is tagged 'serve'; reading the one tagged {','.join(graphs[0].tags) or '(none)'}")
    return graphs[0]


def _keras_archive(path: Path, notes: list[str]) -> dict:
    archive = read_keras_archive(path)
    config = keras_config.scan(archive.config)
    signature = keras_config.model_signature(archive.config)
    hint = input_hints.keras_hint(archive.config, signature)
    if archive.weights_member is None:
        notes.append("the archive holds no weights file: the model will load with freshly initialised weights")
    notes.append("the .keras format records no TensorFlow version; the Keras version decides it")
    return {
        "format": KERAS,
        "tensorflow_version": None,
        "tensorflow_git_version": None,
        "keras_version": archive.keras_version,
        "keras_backend": None,
        "saved_at": archive.saved_at,
        "meta_graphs": (),
        "signatures": (signature,) if signature else (),
        "ops": {},
        "custom_objects": config.objects(),
        "layers": dict(sorted(config.layers.items())),
        "weights_only": False,
        "call_hints": (hint,) if hint else (),
    }


def _h5(path: Path, notes: list[str]) -> dict:
    model = read_h5(path)
    config = keras_config.scan(model.config) if model.config else keras_config.ConfigFacts()
    signature = keras_config.model_signature(model.config) if model.config else None
    hint = input_hints.keras_hint(model.config, signature) if model.config else None
    if model.config is None:
        notes.append(
            f"weights only ({model.weights_layout}): loading needs the Python code that builds the model; "
            "give it with --code FILE --model-builder MODULE:FUNCTION, or save the full model (model.save)"
        )
    return {
        "format": H5,
        "tensorflow_version": None,
        "tensorflow_git_version": None,
        "keras_version": model.keras_version,
        "keras_backend": model.backend,
        "saved_at": None,
        "meta_graphs": (),
        "signatures": (signature,) if signature else (),
        "ops": {},
        "custom_objects": config.objects(),
        "layers": dict(sorted(config.layers.items())),
        "weights_only": model.config is None,
        "weights_layout": None if model.config is not None else model.weights_layout,
        "call_hints": (hint,) if hint else (),
    }


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
