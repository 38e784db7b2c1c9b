"""Say why a model did not load in its image, in plain words, and what to change.

`diagnose()` is pure: it reads the verifier's result (smenv/runtime/verify.py prints it after
`SMENV_RESULT `), the plan (smenv.json, read once into an ImagePlan: smenv/verify/image_plan.py) and
what Docker saw (time-out, OOM kill, exit code, stderr).
Each rule matches a message TensorFlow, Keras, NumPy or Python really raises; its source is named
beside the pattern. A fix that is only "add this package" is also put in `fix_packages`, which
`--fix` hands back to the resolver.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources

from packaging.specifiers import SpecifierSet

from smenv.env import companion_pins, releases
from smenv.model.companions import package_for_object, package_for_op
from smenv.model.facts import CustomObject
from smenv.model.keras_config import builtin_class_names
from smenv.verify.image_plan import ImagePlan

# kind -> exit code of `smenv build/verify`: part of the CLI contract (smenv/errors.py lists 20-31).
KINDS = {
    "op_not_registered": 20,
    "unknown_object": 21,
    "keras_format_mismatch": 22,
    "missing_module": 23,
    "numpy_abi": 24,
    "savedmodel_too_new": 25,
    "weights_only": 26,
    "weights_mismatch": 26,
    "lambda_safe_mode": 27,
    "timeout": 28,
    "out_of_memory": 29,
    "load_failed": 30,
    "call_failed": 31,
}


@dataclass(frozen=True)
class Diagnosis:
    kind: str  # a key of KINDS
    exit_code: int
    summary: str  # one plain line: what went wrong
    fix: str  # what to change, concretely
    details: dict = field(default_factory=dict)  # structured facts behind summary and fix
    fix_packages: tuple[str, ...] = ()  # requirements --fix can add; empty when the fix is not mechanical

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "exit_code": self.exit_code,
            "summary": self.summary,
            "fix": self.fix,
            "details": self.details,
            "fix_packages": list(self.fix_packages),
        }


def _diag(kind: str, summary: str, fix: str, details: dict | None = None, fix_packages: tuple[str, ...] = ()) -> Diagnosis:
    return Diagnosis(kind, KINDS[kind], _one_line(summary), fix, details or {}, fix_packages)


@cache
def _module_of(package: str) -> str:
    """The module a companion package installs (smenv/data/companions.json)."""
    data = json.loads(resources.files("smenv.data").joinpath("companions.json").read_text(encoding="utf-8"))
    modules = data["packages"].get(package, {}).get("modules") or [package.replace("-", "_")]
    return modules[0]


# tf-keras is a companion (companion_releases.json) but provides no ops or custom classes, so
# companions.json does not list its module.
_EXTRA_MODULES = {"tf_keras": "tf-keras"}


def _package_for_module(module: str) -> str | None:
    root = module.split(".")[0]
    return _EXTRA_MODULES.get(root) or package_for_object(CustomObject("", root, None))


def _add_package(kind: str, summary: str, package: str, details: dict, plan: ImagePlan) -> Diagnosis:
    """The fix is a companion package: pinned to the image's TensorFlow, mechanical when a release fits."""
    requirement = plan.requirement(package)
    details = {**details, "package": package, "requirement": requirement}
    installed = plan.locked.get(package)
    if installed and kind != "missing_module":
        module = _module_of(package)
        if module not in plan.imports:  # its ops and classes register only when the module is imported
            fix = (f"{package} {installed} is installed, but its ops and classes exist only once "
                   f"`import {module}` has run: import it before loading the model")
            return _diag(kind, summary, fix, details)
        if requirement and requirement != package and not SpecifierSet(requirement[len(package):]).contains(installed):
            fix = f"{package} {installed} does not go with TensorFlow {plan.tf}: pin {requirement} in requirements.txt (or rerun with --fix)"
            return _diag(kind, summary, fix, {**details, "installed": installed}, (requirement,))
        fix = f"{package} {installed} is installed and imported but does not provide it: the model needs another release of {package}"
        return _diag(kind, summary, fix, {**details, "installed": installed})
    if requirement is None:
        fix = (f"{package} has no release for TensorFlow {plan.release.minor} ({companion_pins.describe(package)}): "
               "rebuild with --tf-version set to a release it supports")
        return _diag(kind, summary, fix, details)
    return _diag(kind, summary, f"add {requirement} to requirements.txt (or rerun with --fix)", details, (requirement,))


# -- rules: each takes one text (message, traceback or logs) and returns a Diagnosis or None --------

# NumPy 2 importing a module compiled for NumPy 1.x (numpy/_core/_multiarray_umath.py prints the
# first, then the extension's import_array() fails with the other two).
_NUMPY2_ABI = re.compile(
    r"compiled using NumPy 1\.x cannot be run in\s+NumPy 2|_ARRAY_API not found|"
    r"numpy\.core\.(?:multiarray|_multiarray_umath) failed to import"
)
# The reverse: a module built for a newer NumPy (numpy/__init__.pxd / __multiarray_api.h).
_NUMPY_NEWER_ABI = re.compile(
    r"module compiled against ABI version (0x[0-9a-f]+) but this version of numpy is (0x[0-9a-f]+)|"
    r"numpy\.dtype size changed, may indicate binary incompatibility"
)
_SITE_PACKAGE = re.compile(r"(?:site|dist)-packages/([A-Za-z_]\w*)")


def _numpy_abi(text: str, plan: ImagePlan) -> Diagnosis | None:
    older = _NUMPY2_ABI.search(text)
    if not older and not _NUMPY_NEWER_ABI.search(text):
        return None
    # The compiled package is usually the last one in the traceback that is not NumPy itself.
    culprits = [m for m in _SITE_PACKAGE.findall(text) if m not in ("numpy", "importlib")]
    culprit = culprits[-1] if culprits else None
    details = {"module": culprit, "numpy": plan.locked.get("numpy")}
    who = f"a compiled package ({culprit})" if culprit else "a compiled package"
    if older:
        return _diag(
            "numpy_abi",
            f"{who} was built against NumPy 1.x, but the image has NumPy {plan.locked.get('numpy', '2.x')}",
            "add numpy<2 to requirements.txt (or rerun with --fix): packages compiled for NumPy 1.x cannot import under NumPy 2",
            details,
            ("numpy<2",),
        )
    return _diag(
        "numpy_abi",
        f"{who} was built for a newer NumPy than the image's NumPy {plan.locked.get('numpy', '')}".rstrip(),
        "pin that package in requirements.txt to a release built for the NumPy this TensorFlow uses, or allow a newer numpy",
        details,
    )


# core/framework/op.cc; TF2's saved_model/load.py re-raises it as FileNotFoundError with an
# `experimental_io_device` hint appended, so the type is not checked.
_OP_MISSING = re.compile(r"Op type not registered '([^']+)'")


def _op_not_registered(text: str, plan: ImagePlan) -> Diagnosis | None:
    m = _OP_MISSING.search(text)
    if not m:
        return None
    op = m.group(1)
    summary = f"the model uses op {op}, which TensorFlow {plan.tf} does not provide"
    details = {"op": op, "release": plan.tf}
    package = package_for_op(op)
    if package:
        return _add_package("op_not_registered", summary, package, details, plan)
    newer = plan.producer_release()
    if newer:  # a core op added after the image's release
        fix = (f"no companion package provides {op}, and the model was written by TensorFlow {newer}: "
               f"rebuild with --tf-version {newer}")
    else:
        fix = f"no package smenv knows provides op {op}: add the package that registers it to requirements.txt and import it before loading"
    return _diag("op_not_registered", summary, fix, {**details, "package": None})


# core/framework/versions.cc (graph versions) and node_def_util.cc (an attr the op lacks here).
_TOO_NEW = (
    re.compile(r"min consumer version (\d+) above current version (\d+)"),
    re.compile(r"NodeDef mentions attr '([^']+)' not in Op<name=([\w>]+)"),
)


def _savedmodel_too_new(text: str, plan: ImagePlan) -> Diagnosis | None:
    m = _TOO_NEW[0].search(text) or _TOO_NEW[1].search(text)
    if not m:
        return None
    producer = plan.model_tensorflow
    newer = plan.producer_release()
    details = {"producer": producer, "release": plan.tf, "evidence": m.group(0)}
    summary = (f"the model was saved by TensorFlow {producer}, newer than the image's {plan.tf}" if producer
               else f"the model was saved by a newer TensorFlow than the image's {plan.tf}")
    fix = f"rebuild with --tf-version {newer}" if newer else f"rebuild with --tf-version set to a release newer than {plan.tf}"
    return _diag("savedmodel_too_new", summary, fix, details)


# Keras safe mode refusing Python lambdas (keras-team/keras, the tags that print each):
# - layers/core/lambda_layer.py: v2.12-v2.15 "Requested the deserialization of a Lambda layer with a
#   Python `lambda` inside it"; v3.0-v3.9.2 "The `{arg_name}` of this `Lambda` layer is a Python lambda"
#   (`{arg_name}` printed as is), v3.10-v3.11.2 the same with "function"; v3.11.3+ "Requested the
#   deserialization of a `Lambda` layer whose `function` is a Python lambda";
# - layers/rnn/cell_wrappers.py, v2.12-v2.15: "... of a layer with a Python `lambda` inside it";
# - saving/serialization_lib.py: to v3.11.2 "... of a `lambda` object", v3.11.3+ "... of a Python lambda".
_LAMBDA_SAFE_MODE = re.compile(
    r"Requested the deserialization of a (?:`?Lambda`? layer|layer with a Python `lambda`|`lambda` object|Python lambda)|"
    r"The `[^`]*` of this `Lambda` layer is a Python lambda"
)
# Lambda bytecode read by another Python minor (marshal.loads / the interpreter).
_BYTECODE = re.compile(r"bad marshal data|unknown opcode")


def _lambda(text: str, plan: ImagePlan) -> Diagnosis | None:
    python = plan.python or "its Python"
    if _LAMBDA_SAFE_MODE.search(text):
        return _diag(
            "lambda_safe_mode",
            "the model has a Lambda layer (saved Python bytecode), which Keras refuses to load by default",
            "Keras's safe mode blocks Lambda bytecode because loading it runs arbitrary code. After reviewing where the "
            "model comes from, rebuild with --unsafe-deserialization (the image then loads it with safe_mode=False; the "
            f"bytecode needs the Python minor it was saved with, the image has {python}); better, replace the Lambda with "
            "a registered custom layer",
            {"python": plan.python},
        )
    if _BYTECODE.search(text) and any(o.kind == "lambda" for o in plan.objects):
        return _diag(
            "lambda_safe_mode",
            f"the model's Lambda layer holds Python bytecode from another Python version than the image's ({python})",
            "rebuild with --python set to the Python minor the model was trained with (Lambda bytecode runs only there), "
            "or replace the Lambda with a registered custom layer",
            {"python": plan.python},
        )
    return None


# Keras 2 given a Keras 3 config: InputLayer has `batch_input_shape` there, `batch_shape` in Keras 3.
_KERAS3_FILE = re.compile(r"Unrecognized keyword arguments[^\n]*'batch_shape'")
# Keras 3 given a SavedModel directory (keras/src/saving/saving_api.py).
_NOT_KERAS3_FILE = re.compile(r"File format not supported: filepath=")


def _keras_format(text: str, plan: ImagePlan) -> Diagnosis | None:
    if _KERAS3_FILE.search(text):
        return _format_mismatch(plan, runtime_keras3=False, evidence="batch_shape")
    if _NOT_KERAS3_FILE.search(text):
        return _format_mismatch(plan, runtime_keras3=True, evidence="File format not supported")
    return None


def _format_mismatch(plan: ImagePlan, runtime_keras3: bool, evidence: str) -> Diagnosis:
    details = {"runtime_keras": 3 if runtime_keras3 else 2, "model_keras": plan.model_keras, "evidence": evidence}
    if runtime_keras3:
        requirement = plan.requirement("tf-keras")
        summary = f"the model was saved by Keras 2, but TensorFlow {plan.tf} loads it with Keras 3, which cannot read it"
        if requirement is None:
            return _diag("keras_format_mismatch", summary, "rebuild with --tf-version 2.15.1 (the last release with Keras 2)", details)
        fix = f"add {requirement} to requirements.txt and set TF_USE_LEGACY_KERAS=1 (or rerun with --fix)"
        return _diag("keras_format_mismatch", summary, fix, {**details, "requirement": requirement}, (requirement,))
    loader = "tf-keras" if plan.legacy_keras else "Keras 2"
    summary = f"the model was saved by Keras 3, but the image loads it with {loader} (TensorFlow {plan.tf}), which cannot read it"
    fix = f"rebuild with --tf-version {plan.keras3_release()} (Keras 3 ships with TensorFlow 2.16 and later)"
    return _diag("keras_format_mismatch", summary, fix, details)


# tf_keras legacy/hdf5_format.py and keras/src/legacy/saving/legacy_h5_format.py; before TF 2.4 the
# message was "No model found in config file.".
_WEIGHTS_ONLY = re.compile(r"No model config found in the file|No model found in config file")


def _weights_only(text: str, plan: ImagePlan) -> Diagnosis | None:
    if not _WEIGHTS_ONLY.search(text):
        return None
    return _diag(
        "weights_only",
        "the file holds weights only, without the model's architecture",
        "save the whole model where it was trained (model.save('model.keras')) and build from that file, or rebuild "
        "with the code that builds it: smenv build MODEL --code FILE --model-builder MODULE:FUNCTION",
    )


# What Keras raises when the weights do not fit the model --model-builder returned: the legacy HDF5
# reader (keras/src/legacy/saving/legacy_h5_format.py, tf_keras's hdf5_format.py; before TF 2.4 "You
# are trying to load a weight file containing N layers into a model with M layers"), and Keras 3's own
# .weights.h5 reader (keras/src/layers/layer.py _check_load_own_variables; a shape that differs fails in
# keras/src/backend/common/variables.py assign()); TensorFlow's own shape check on assignment ("Cannot
# assign value to variable ...", before TF 2.9 "Shapes (4, 8) and (4, 4) are incompatible") where a
# reader did not compare shapes; tf.keras's by-name reader before Keras 2.13 ("... was found to correspond
# to layer ...").
_WEIGHTS_MISMATCH = re.compile(
    r"(Layer count mismatch when loading weights[^\n]*|Weight count mismatch for[^\n]*|Shape mismatch in [^\n]*|"
    r"You are trying to load a weight file containing[^\n]*|Layer '[^']+' expected \d+ variables, but received[^\n]*|"
    r"Cannot assign (?:value )?to variable[^\n]*|The shape of the target variable and the shape of the target value[^\n]*|"
    r"was found to correspond to layer[^\n]*|Shapes \([^)]*\) and \([^)]*\) are incompatible[^\n]*)"
)


def _weights_mismatch(text: str, plan: ImagePlan) -> Diagnosis | None:
    if not plan.model_builder:
        return None
    m = _WEIGHTS_MISMATCH.search(text)
    if not m:
        return None
    return _diag(
        "weights_mismatch",
        f"the weights do not fit the model {plan.model_builder}() returned: {m.group(1).strip()}",
        f"make {plan.model_builder} build the architecture the weights were saved from (same layers, in the same "
        "order, with the same shapes), or save the whole model (model.save('model.keras')) and build from that",
        {"model_builder": plan.model_builder},
    )


_UNKNOWN_OBJECT = (
    # keras/src/saving/serialization_lib.py (Keras 3, and tf.keras >= 2.13 reading .keras files)
    re.compile(r"Could not locate (class|function) '([^']+)'"),
    re.compile(r"Could not deserialize (class|function) '([^']+)' because its parent module ([\w.]+) cannot be imported"),
    # legacy serialization.py: "Unknown {printable_module_name}: '{class_name}'. Please ensure ..."
    # (quotes from Keras 2.10; before, the bare name)
    re.compile(r"Unknown (layer|activation(?: function)?|loss(?: function)?|metric(?: function)?|initializer|"
               r"regularizer|constraint|optimizer|dtype policy|object): '?([\w>.]+)'?"),
    # tf.keras SavedModel revival (keras/saving/legacy/saved_model/load.py)
    re.compile(r'Unable to restore custom object of (class) "([^"]+)"'),
)
_CONFIG_MODULE = re.compile(r"'module': '([\w.]+)'")  # Keras 3 appends "Full object config: {'module': ...}"
_KERAS_ROOTS = ("keras", "tf_keras", "tensorflow")


def _unknown_object(text: str, plan: ImagePlan) -> Diagnosis | None:
    for pattern in _UNKNOWN_OBJECT:
        m = pattern.search(text)
        if m:
            break
    else:
        return None
    what, name = ("function" if "function" in m.group(1) else "class"), m.group(2)
    obj = plan.find_object(name)
    bare = obj.class_name if obj else name.split(">")[-1]
    module = obj.module if obj else None
    if module is None and m.lastindex == 3:
        module = m.group(3)
    if module is None:
        near = _CONFIG_MODULE.search(text, m.end(), m.end() + 400)
        module = near.group(1) if near else None
    if obj is None and (bare in builtin_class_names() or (module or "").split(".")[0] in _KERAS_ROOTS):
        return _unknown_keras_class(bare, plan)
    registered = name if ">" in name else (obj.registered_name if obj else None)
    details = {"class_name": bare, "module": module, "registered_name": registered}
    where = f" (module {module})" if module and module != "__main__" else ""
    summary = f"the model uses the custom {what} {bare}{where}, which the image does not have"
    package = package_for_object(CustomObject(bare, module, registered))
    if package:
        return _add_package("unknown_object", summary, package, details, plan)
    return _diag("unknown_object", summary, _code_fix(bare, module, plan), details)


def _unknown_keras_class(name: str, plan: ImagePlan) -> Diagnosis:
    """A Keras class the image's Keras lacks: the other Keras generation, or a newer Keras release."""
    kv = plan.model_keras or ""
    if not kv or kv.startswith("3.") != plan.keras3:
        return _format_mismatch(plan, runtime_keras3=plan.keras3, evidence=f"unknown Keras class {name}")
    try:
        target = releases.for_keras(kv).release.version
    except releases.UnknownRelease:
        target = None
    return _diag(
        "keras_format_mismatch",
        f"the model uses the Keras class {name}, which the Keras of TensorFlow {plan.tf} does not have (it was saved by Keras {kv})",
        f"rebuild with --tf-version {target}" if target else f"rebuild with --tf-version set to a release whose Keras is {kv} or newer",
        {"class_name": name, "model_keras": kv, "evidence": f"unknown Keras class {name}"},
    )


def _code_fix(name: str, module: str | None, plan: ImagePlan) -> str:
    if not module or module == "__main__":
        return (f"{name} was defined in the training script itself, so no module provides it: move it into a module, "
                "register it with @keras.saving.register_keras_serializable(), save the model again, and rebuild with --code")
    top = module.split(".")[0]
    if top in plan.code:
        return (f"--code {top} is in the image, yet {name} was not found: check that {module} defines it and registers it "
                "with @keras.saving.register_keras_serializable(), and that it is imported before loading")
    return f"rebuild with --code path/to/{top} (the module or package that defines {name})"


_NO_MODULE = re.compile(r"No module named '([\w.]+)'")  # Python's ModuleNotFoundError


def _missing_module(text: str, plan: ImagePlan) -> Diagnosis | None:
    m = _NO_MODULE.search(text)
    if not m:
        return None
    module = m.group(1)
    root = module.split(".")[0]
    summary = f"Python cannot import {module}, which loading the model needs"
    details = {"module": module}
    package = _package_for_module(module)
    if package:
        return _add_package("missing_module", summary, package, details, plan)
    owners = [o for o in plan.objects if o.module and o.module.split(".")[0] == root]
    if owners or root in plan.code:
        name = owners[0].class_name if owners else module
        return _diag("missing_module", summary, _code_fix(name, module, plan), {**details, "class_name": name})
    installed = plan.locked.get(root.lower().replace("_", "-"))
    if installed:  # e.g. numpy._core, which exists only from NumPy 2
        fix = f"{root} {installed} is installed but has no {module}: the model or its code needs another version of {root}; pin it in requirements.txt"
        return _diag("missing_module", summary, fix, {**details, "installed": installed})
    return _diag("missing_module", summary, f"add the package that provides {root} to requirements.txt", details)


# tensorflow_probability/python/__init__.py, _ensure_tf_install().
_TFP_NEEDS_TF = re.compile(r"This version of TensorFlow Probability requires TensorFlow version >= ?([\d.]+)")


def _tfp_version(text: str, plan: ImagePlan) -> Diagnosis | None:
    m = _TFP_NEEDS_TF.search(text)
    if not m:
        return None
    summary = f"the installed tensorflow-probability needs TensorFlow >= {m.group(1)}, but the image has {plan.tf}"
    # Installed, but a release too new for this TensorFlow: the fix is the release that goes with it.
    requirement = plan.requirement("tensorflow-probability")
    details = {"needs_tensorflow": m.group(1), "package": "tensorflow-probability", "requirement": requirement}
    if requirement is None or requirement == "tensorflow-probability":
        return _diag("load_failed", summary, f"pin tensorflow-probability to a release that supports TensorFlow {plan.tf}", details)
    return _diag("load_failed", summary, f"add {requirement} to requirements.txt (or rerun with --fix)", details, (requirement,))


_RULES: tuple[Callable[[str, ImagePlan], Diagnosis | None], ...] = (
    _numpy_abi, _op_not_registered, _savedmodel_too_new, _lambda, _keras_format,
    _weights_only, _weights_mismatch, _unknown_object, _missing_module, _tfp_version,
)


def _match(texts: list[str], plan: ImagePlan) -> Diagnosis | None:
    """The first rule that recognises a text; the exception message outranks traceback and logs."""
    for text in texts:
        if not text:
            continue
        for rule in _RULES:
            diagnosis = rule(text, plan)
            if diagnosis:
                return diagnosis
    return None


# -- entry point ------------------------------------------------------------------------------------

_STAGE_WORDS = {"start": "starting the verifier", "import": "importing TensorFlow", "load": "loading the model", "call": "calling the model"}
# TensorFlow's cpu_feature_guard.cc, when the wheel needs AVX and the CPU lacks it.
_NO_AVX = re.compile(r"compiled to use AVX instructions, but these aren't available")


def diagnose(
    result: dict | None,
    plan: dict | ImagePlan,
    *,
    timed_out: bool = False,
    oom_killed: bool = False,
    exit_code: int | None = None,
    logs: str = "",
) -> Diagnosis:
    """Classify a failed verification. `result` is the verifier's JSON, None when it printed none."""
    p = plan if isinstance(plan, ImagePlan) else ImagePlan.from_json(plan)
    stage = (result or {}).get("stage")
    if timed_out:
        return _with_stage(_timeout(logs), stage)
    if oom_killed or (result is None and exit_code == 137):
        return _with_stage(_out_of_memory(p, oom_killed, exit_code), stage)
    if result is None:
        return _match([logs], p) or _no_result(exit_code, logs)
    error = result.get("error") or {}
    found = _match([error.get("message") or "", error.get("traceback") or "", logs], p)
    if found is None and stage == "load" and error:
        found = _custom_object_not_in_image(p, error)
    return _with_stage(found or _fallback(result, error, exit_code), stage)


def _custom_object_not_in_image(plan: ImagePlan, error: dict) -> Diagnosis | None:
    """When the error names nothing useful, the model's own facts may.

    tf.keras 2.x leaves an unresolvable class in a functional config as a string and then fails with
    "TypeError: 'str' object is not callable"; the model's config still says which custom class it
    needed, and smenv knows which modules the image has.
    """
    for obj in plan.objects:
        if obj.kind == "lambda" or package_for_object(obj) is not None:
            continue
        if obj.module and obj.module.split(".")[0] in plan.code:
            continue
        where = f" (module {obj.module})" if obj.module and obj.module != "__main__" else ""
        what = f"{error.get('type') or 'Error'}: {_first_line(error.get('message') or '')}"
        return _diag(
            "unknown_object",
            f"loading failed ({what}); the model uses the custom {obj.kind} {obj.class_name}{where}, which the image does not have",
            _code_fix(obj.class_name, obj.module, plan),
            {"class_name": obj.class_name, "module": obj.module, "registered_name": obj.registered_name,
             "evidence": "the model's config (static); the error message did not name the class"},
        )
    return None


def _with_stage(diagnosis: Diagnosis, stage: str | None) -> Diagnosis:
    return replace(diagnosis, details={"stage": stage, **diagnosis.details}) if stage else diagnosis


def _timeout(logs: str) -> Diagnosis:
    last = _last_progress(logs)
    return _diag(
        "timeout",
        "the model did not finish loading and running within the time limit",
        "rerun with a longer --timeout; a model that needs network access at load time cannot work in the sandbox, which has none",
        {"last_progress": last},
    )


def _out_of_memory(plan: ImagePlan, oom_killed: bool, exit_code: int | None) -> Diagnosis:
    size = plan.model_size_bytes
    on_disk = f" (its files alone take {size / 2**30:.1f} GiB)" if size else ""
    summary = ("the container ran out of memory and was killed" if oom_killed
               else "the container was killed (exit 137, SIGKILL) before it reported, almost always at its memory limit")
    return _diag(
        "out_of_memory",
        summary,
        f"rerun with a larger --memory, e.g. --memory 8g: loading a model needs more memory than its size on disk{on_disk}",
        {"oom_killed": oom_killed, "exit_code": exit_code, "size_bytes": size},
    )


def _no_result(exit_code: int | None, logs: str) -> Diagnosis:
    """The verifier printed nothing: it died in native code, or was stopped from outside."""
    details = {"exit_code": exit_code, "last_log_line": _last_line(logs)}
    if exit_code == 132 or _NO_AVX.search(logs):  # 128 + SIGILL
        return _diag(
            "load_failed",
            "TensorFlow stopped on an illegal CPU instruction: this CPU lacks instructions (such as AVX) the wheel was built for",
            "run on a machine whose CPU has AVX, or pick a TensorFlow build without it",
            details,
        )
    signals = {134: "aborted (SIGABRT)", 139: "crashed with a segmentation fault (SIGSEGV)"}
    how = signals.get(exit_code, f"stopped (exit code {exit_code})")
    return _diag(
        "load_failed",
        f"the container {how} before the verifier reported a result",
        "read the container output (smenv verify --json shows its last lines); a crash in native code often means a "
        "compiled package built for another TensorFlow or NumPy release than the one in requirements.lock",
        details,
    )


def _fallback(result: dict, error: dict, exit_code: int | None) -> Diagnosis:
    stage = result.get("stage") or "load"
    if not error:  # the verifier said ok (or nothing), but the container did not exit cleanly
        return _diag(
            "load_failed",
            f"the verifier finished at stage {stage} but the container exited with code {exit_code}",
            "read the container output: something failed after the verifier's report",
            {"exit_code": exit_code},
        )
    kind = "call_failed" if stage == "call" else "load_failed"
    what = f"{error.get('type') or 'Error'}: {_first_line(error.get('message') or '')}".rstrip(": ")
    details = {"error_type": error.get("type"), "error_module": error.get("module"), "message": _first_line(error.get("message") or "")}
    if kind == "call_failed":
        # The verifier stops on a call that failed on the user's own --sample-input (`fatal`); made-up input that
        # fails is "not checked" instead (smenv/verify/inputs.py), unless an older verifier stopped on it.
        signatures = [s for s in result.get("signatures") or [] if isinstance(s, dict)]
        failed = next((s for s in signatures if s.get("fatal")), None) or next((s for s in signatures if s.get("primary")), None)
        details["signature"] = failed.get("name") if failed else None
        if failed and failed.get("synthetic") is False:
            fix = ("the model loaded, but calling it with your --sample-input failed: check each array's name, dtype and "
                   "shape against the model's inputs (smenv inspect shows them), or fix what the error names")
        else:
            fix = ("the model loaded, but calling it with synthetic input (zeros, empty strings) failed: pass a real input "
                   "sample with --sample-input file.npz, or fix what the error names")
    else:
        fix = "smenv does not recognise this error; the message and the traceback in the result name what failed"
    return _diag(kind, f"{_STAGE_WORDS.get(stage, stage)} failed with {what}", fix, details)


# -- text helpers ---------------------------------------------------------------------------------


def _one_line(text: str, limit: int = 240) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _first_line(text: str) -> str:
    return _one_line(next((line for line in text.splitlines() if line.strip()), ""), 200)


def _last_line(text: str) -> str | None:
    lines = [line for line in text.splitlines() if line.strip()]
    return _one_line(lines[-1], 200) if lines else None


def _last_progress(logs: str) -> str | None:
    """The verifier's last progress line on stderr (`smenv-verify: ...`): how far it got."""
    lines = [line for line in logs.splitlines() if line.startswith("smenv-verify:")]
    return lines[-1].removeprefix("smenv-verify:").strip() if lines else None
