"""Load failures that can be foreseen from the model files alone, said before anything is locked or built.

Each of these used to surface only minutes later, as a failed verification:
- a custom class or function whose module the image will not have (no `--code` for it): exit 21/23;
- a SavedModel whose graph reads variables but whose `variables/` directory is missing: the loader
  cannot restore them;
- a Lambda layer: its function is marshalled CPython bytecode, which loads only on the Python minor
  version that wrote it; no Keras format records that version. In a `.keras` archive, Keras's safe mode
  (on by default since the format exists) refuses it outright: exit 27 unless --unsafe-deserialization.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from smenv.model.companions import package_for_object
from smenv.model.facts import KERAS, KERAS_SAVEDMODEL, SAVEDMODEL, CustomObject, ModelFacts

# Ops that create or hold a variable (resource and reference variables; TF 1.x and 2.x graphs).
VARIABLE_OPS = ("VarHandleOp", "VariableV2", "Variable", "VarHandleOpV2")


@dataclass(frozen=True)
class LoadRisk:
    kind: str  # custom-code | missing-variables | lambda-python | lambda-safe-mode
    message: str


def foresee(facts: ModelFacts, code: tuple[Path, ...], python: str | None, safe_mode: bool = True) -> tuple[LoadRisk, ...]:
    """What would make this model fail to load in the planned image; `python` is the image's Python,
    `safe_mode` whether Keras loads it in safe mode (the default; off with --unsafe-deserialization)."""
    risks = []
    missing = _objects_without_code(facts.custom_objects, code)
    if missing:
        risks.append(LoadRisk("custom-code", _custom_code_message(missing)))
    variables = sum(facts.ops.get(op, 0) for op in VARIABLE_OPS)
    if facts.format in (SAVEDMODEL, KERAS_SAVEDMODEL) and variables and not _has_variables(Path(facts.model_root)):
        risks.append(LoadRisk(
            "missing-variables",
            f"the graph creates variables ({variables} {_ops_named(facts.ops)} node(s)) but {Path(facts.model_root).name}/ has no variables/ directory "
            "(variables.index and its data shards): loading cannot restore them; copy the whole exported directory",
        ))
    lambdas = facts.lambda_layers
    if lambdas:
        image = f"the image uses Python {python}" if python else "the image's Python must match it"
        risks.append(LoadRisk(
            "lambda-python",
            f"{lambdas} Lambda layer(s) hold CPython bytecode, which loads only on the Python minor version that "
            f"saved the model; the model does not record which, and {image}: pass --python with the training "
            "Python if it differs (or replace the Lambda with a registered layer class)",
        ))
        if facts.format == KERAS and safe_mode:
            risks.append(LoadRisk(
                "lambda-safe-mode",
                "Keras's safe mode refuses the Lambda bytecode of a .keras archive, so loading will fail (exit 27): "
                "after reviewing where the model comes from, build with --unsafe-deserialization",
            ))
    return tuple(risks)


def _objects_without_code(objects: tuple[CustomObject, ...], code: tuple[Path, ...]) -> list[CustomObject]:
    given = {_module_name(c) for c in code}
    missing = []
    for obj in objects:
        if obj.kind == "lambda" or package_for_object(obj) is not None:
            continue  # Lambdas carry their code; companion classes come with their package
        root = (obj.module or "").split(".")[0]
        if root in ("__main__", ""):
            # Defined in the training script (or not recorded, as in .h5): no --code can be matched to it.
            if not code:
                missing.append(obj)
        elif root not in given:
            missing.append(obj)
    return missing


def _module_name(path: Path) -> str:
    return path.stem if path.suffix == ".py" else path.name


def _custom_code_message(objects: list[CustomObject]) -> str:
    named = ", ".join(
        f"{o.class_name} ({'module ' + o.module if o.module and o.module != '__main__' else 'module not recorded'})"
        for o in objects[:4]
    )
    more = f" and {len(objects) - 4} more" if len(objects) > 4 else ""
    modules = sorted({o.module.split(".")[0] for o in objects if o.module and o.module != "__main__"})
    fix = (
        f"pass --code path/to/{modules[0]} (the module or package that defines it)" if len(modules) == 1
        else f"pass --code for each of {', '.join(modules)}" if modules
        else "pass --code with the module that defines it (a class defined in the training script must move to a module)"
    )
    return f"the model uses custom code the image will not have: {named}{more}; {fix}"


def _ops_named(ops: dict[str, int]) -> str:
    return "/".join(op for op in VARIABLE_OPS if ops.get(op))


def _has_variables(root: Path) -> bool:
    return (root / "variables" / "variables.index").is_file()
