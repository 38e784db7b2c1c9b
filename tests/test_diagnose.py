"""smenv.verify.diagnose: real failure messages -> kind, exit code, fix and --fix packages.

Every message below is one TensorFlow, Keras, NumPy or Python really prints: either recorded when it
was printed (tests/fixtures/models/EXPECTED.json, written by the fixture generator, which every
recorded failure is read from; bench/results/latest.json), or its template in the source that raises
it, named in the comment beside it (keras-team/keras at the tag named, tensorflow/tensorflow).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smenv.model.inspect import inspect_model
from smenv.verify.diagnose import KINDS, Diagnosis, diagnose


def make_plan(
    tf: str = "2.15.1",
    keras_major: int = 2,
    legacy_keras: bool = False,
    fmt: str = "savedmodel",
    producer: str | None = "2.15.1",
    keras_version: str | None = None,
    custom_objects: list[dict] | None = None,
    lock: dict[str, str] | None = None,
    code: list[str] | None = None,
    imports: list[str] | None = None,
    python: str = "3.11",
    model: dict | None = None,
    model_builder: str | None = None,
) -> dict:
    """A smenv.json as smenv.pipeline writes it, reduced to the keys diagnose reads.

    `model` replaces the model section (the static facts smenv read, ModelFacts.to_json()).
    """
    return {
        "model": model or {
            "format": fmt,
            "tensorflow_version": producer,
            "keras_version": keras_version,
            "custom_objects": custom_objects or [],
            "companion_packages": [],
            "ops": {},
            "weights_only": False,
            "size_bytes": 3 * 2**30,
        },
        "environment": {
            "tensorflow_version": tf,
            "python": python,
            "keras_major": keras_major,
            "legacy_keras": legacy_keras,
            "loader": "saved_model" if fmt == "savedmodel" else "keras",
            "packages": [{"requirement": f"tensorflow-cpu=={tf}", "origin": "model", "reason": ""}],
            **({"model_builder": model_builder} if model_builder else {}),
        },
        "lock": {"digest": "sha256:0", "packages": {"tensorflow-cpu": tf, "numpy": "1.26.4", **(lock or {})}},
        "image": {"model_path": "/opt/smenv/model", "uid": 10001, "code": code or [], "imports": imports or []},
    }


def failed(stage: str, type_: str, message: str, traceback: str = "", module: str = "builtins") -> dict:
    """The verifier's result (smenv/runtime/verify.py) after an exception."""
    return {
        "ok": False,
        "stage": stage,
        "timings": {},
        "signatures": [],
        "python": "3.11.9",
        "error": {"type": type_, "module": module, "message": message, "traceback": traceback or f"Traceback ...\n{type_}: {message}"},
    }


SCALE_SHIFT = {"class_name": "ScaleShift", "module": "smenv_fixture_layers", "registered_name": "Custom>ScaleShift", "kind": "class", "count": 1}

# tensorflow core/framework/op.cc, as TF2's python/saved_model/load.py re-raises it (FileNotFoundError
# + io_device hint); the first sentences as saved_model_cli printed them (SAVED_MODEL_CLI_OP_MISSING).
OP_NOT_REGISTERED = (
    "Op type not registered '{op}' in binary running on 3f9c2a. Make sure the Op and Kernel are registered in the "
    "binary running in this process. Note that if you are loading a saved graph which used ops from tf.contrib "
    "(e.g. `tf.contrib.resampler`), accessing should be done before importing the graph, as contrib ops are lazily "
    "registered when the module is first accessed.\n You may be trying to load on a different device from the "
    "computational device. Consider setting the `experimental_io_device` option in `tf.saved_model.LoadOptions` "
    "to the io_device such as '/job:localhost'."
)
# Printed by saved_model_cli (TensorFlow on the benchmark host) for the tfserving-tf-text-regression
# model, recorded in bench/results/latest.json (inspection.models[12].saved_model_cli.error; the bench
# keeps its first 300 characters).
SAVED_MODEL_CLI_OP_MISSING = (
    "Op type not registered 'ConstrainedSequence' in binary running on vm. Make sure the Op and Kernel are "
    "registered in the binary running in this process. Note that if you are loading a saved graph which used ops "
    "from tf.contrib (e.g. `tf.contrib.resampler`), accessing should be done befo"
)
# keras/src/saving/serialization_lib.py, _retrieve_class_or_fn() (keras v3.8.0)
COULD_NOT_LOCATE = (
    "Could not locate class '{name}'. Make sure custom classes are decorated with "
    "`@keras.saving.register_keras_serializable()`. Full object config: {{'module': '{module}', 'class_name': "
    "'{name}', 'config': {{'name': 'scale_shift', 'trainable': True, 'dtype': 'float32'}}, 'registered_name': '{reg}', "
    "'build_config': {{'input_shape': [None, 4]}}, 'name': 'scale_shift', 'inbound_nodes': []}}"
)
# tf_keras/src/saving/legacy/serialization.py, class_and_config_for_serialized_keras_object()
# (keras v2.15.0: keras/saving/legacy/serialization.py)
UNKNOWN_LAYER = (
    "Unknown layer: '{name}'. Please ensure you are using a `keras.utils.custom_object_scope` and that this object "
    "is included in the scope. See https://www.tensorflow.org/guide/keras/save_and_serialize"
    "#registering_the_custom_object for details."
)
# numpy/_core/_multiarray_umath.py prints this, then the extension's import_array() fails (the
# warning as NumPy 2.0 prints it; the traceback's frames are abridged).
NUMPY2_TRACEBACK = """A module that was compiled using NumPy 1.x cannot be run in
NumPy 2.0.1 as it may crash. To support both 1.x and 2.x
versions of NumPy, modules must be compiled with NumPy 2.0.
Some module may need to rebuild instead e.g. with 'pybind11>=2.12'.

If you are a user of the module, the easiest solution will be to
downgrade to 'numpy<2' or try to upgrade the affected module.
We expect that some modules will need time to support NumPy 2.

Traceback (most recent call last):
  File "/opt/smenv/verify.py", line 63, in run
    import tensorflow as tf
  File "/usr/local/lib/python3.11/site-packages/tensorflow/python/pywrap_tensorflow.py", line 73, in <module>
AttributeError: _ARRAY_API not found
ImportError: numpy.core._multiarray_umath failed to import
ImportError: numpy.core.umath failed to import"""


# (id, result, plan, diagnose() keywords, kind, fix_packages, words the fix must contain)
CASES = [
    (
        "tensorflow-text op on TF 2.15.1",
        failed("load", "FileNotFoundError", OP_NOT_REGISTERED.format(op="NormalizeUTF8")),
        make_plan(tf="2.15.1"),
        {},
        "op_not_registered",
        ("tensorflow-text==2.15.*",),
        ["tensorflow-text==2.15.*", "--fix"],
    ),
    (
        "tensorflow-text op, as saved_model_cli printed it",
        failed("load", "RuntimeError", SAVED_MODEL_CLI_OP_MISSING),
        make_plan(tf="2.15.1"),
        {},
        "op_not_registered",
        ("tensorflow-text==2.15.*",),
        ["tensorflow-text==2.15.*", "--fix"],
    ),
    (
        "tensorflow-text installed but never imported",
        failed("load", "FileNotFoundError", OP_NOT_REGISTERED.format(op="CaseFoldUTF8")),
        make_plan(lock={"tensorflow-text": "2.15.0"}),
        {},
        "op_not_registered",
        (),
        ["import tensorflow_text"],
    ),
    (
        "tensorflow-text imported, but a release for another TensorFlow",
        failed("load", "FileNotFoundError", OP_NOT_REGISTERED.format(op="FastBertNormalize")),
        make_plan(lock={"tensorflow-text": "2.14.0"}, imports=["tensorflow_text"]),
        {},
        "op_not_registered",
        ("tensorflow-text==2.15.*",),
        ["tensorflow-text 2.14.0 does not go with TensorFlow 2.15.1"],
    ),
    (
        "tensorflow-text imported, right release, op still missing",
        failed("load", "FileNotFoundError", OP_NOT_REGISTERED.format(op="FastBertNormalize")),
        make_plan(lock={"tensorflow-text": "2.15.0"}, imports=["tensorflow_text"]),
        {},
        "op_not_registered",
        (),
        ["another release of tensorflow-text"],
    ),
    (
        "addons op with no addons release for TF 2.17",
        failed("load", "NotFoundError", OP_NOT_REGISTERED.format(op="Addons>GatherTree")),
        make_plan(tf="2.17.1", keras_major=3, producer="2.14.0"),
        {},
        "op_not_registered",
        (),
        ["tensorflow-addons", "--tf-version"],
    ),
    (
        "core op newer than the image's TensorFlow",
        failed("load", "FileNotFoundError", OP_NOT_REGISTERED.format(op="SomeNewCoreOp")),
        make_plan(tf="2.12.1", producer="2.15.0"),
        {},
        "op_not_registered",
        (),
        ["--tf-version 2.15.0"],
    ),
    (
        "Keras 3 custom class ScaleShift",
        failed("load", "TypeError", COULD_NOT_LOCATE.format(name="ScaleShift", module="smenv_fixture_layers", reg="Custom>ScaleShift")),
        make_plan(tf="2.18.1", keras_major=3, fmt="keras", producer=None, keras_version="3.8.0", custom_objects=[SCALE_SHIFT]),
        {},
        "unknown_object",
        (),
        ["--code", "smenv_fixture_layers"],
    ),
    (
        "legacy .h5 custom layer ScaleShift",
        failed("load", "ValueError", UNKNOWN_LAYER.format(name="ScaleShift")),
        make_plan(fmt="h5", producer=None, keras_version="2.15.0", custom_objects=[SCALE_SHIFT]),
        {},
        "unknown_object",
        (),
        ["--code path/to/smenv_fixture_layers"],
    ),
    (
        "custom class whose module only the message names",
        failed("load", "TypeError", COULD_NOT_LOCATE.format(name="Gate", module="acme_layers.gates", reg="acme>Gate")),
        make_plan(tf="2.18.1", keras_major=3, fmt="keras", producer=None, keras_version="3.8.0"),
        {},
        "unknown_object",
        (),
        ["--code path/to/acme_layers"],
    ),
    (
        "custom class already in --code but not registered",
        failed("load", "ValueError", UNKNOWN_LAYER.format(name="ScaleShift")),
        make_plan(fmt="h5", producer=None, keras_version="2.15.0", custom_objects=[SCALE_SHIFT], code=["smenv_fixture_layers.py"]),
        {},
        "unknown_object",
        (),
        ["register_keras_serializable"],
    ),
    (
        "class defined in the training script (__main__)",
        failed("load", "ValueError", UNKNOWN_LAYER.format(name="Mixer")),
        make_plan(fmt="h5", producer=None, keras_version="2.15.0",
                  custom_objects=[{"class_name": "Mixer", "module": None, "registered_name": None, "kind": "class"}]),
        {},
        "unknown_object",
        (),
        ["training script", "--code"],
    ),
    (
        "tensorflow-addons Keras object",
        failed("load", "ValueError", UNKNOWN_LAYER.format(name="Addons>WeightNormalization")),
        make_plan(fmt="h5", producer=None, keras_version="2.15.0"),
        {},
        "unknown_object",
        ("tensorflow-addons~=0.23.0",),
        ["tensorflow-addons~=0.23.0"],
    ),
    (
        "Keras 3 runtime given a tf.keras file (unknown built-in class)",
        failed("load", "TypeError", COULD_NOT_LOCATE.format(name="Functional", module="keras.src.engine.functional", reg="Functional")),
        make_plan(tf="2.17.1", keras_major=3, fmt="keras", producer=None, keras_version=None),
        {},
        "keras_format_mismatch",
        ("tf-keras==2.17.*",),
        ["TF_USE_LEGACY_KERAS=1"],
    ),
    (
        "Keras 2 given a Keras 3 .keras file",
        # InputLayer in Keras 2 has no `batch_shape` (Keras 3 renamed batch_input_shape): keras v2.15.0
        # keras/engine/input_layer.py raises, keras/engine/base_layer.py Layer.from_config() wraps it.
        failed("load", "TypeError", "Error when deserializing class 'InputLayer' using config={'batch_shape': [None, 224, 224, 3], "
               "'dtype': 'float32', 'sparse': False, 'name': 'input_layer_1'}.\n\nException encountered: "
               "Unrecognized keyword arguments: ['batch_shape']"),
        make_plan(tf="2.15.1", fmt="keras", producer=None, keras_version="3.8.0"),
        {},
        "keras_format_mismatch",
        (),
        ["--tf-version 2.19.1"],
    ),
    (
        "Keras 3 given a SavedModel directory",
        # keras/src/saving/saving_api.py, load_model()
        failed("load", "ValueError", "File format not supported: filepath=/opt/smenv/model. Keras 3 only supports V3 `.keras` "
               "files and legacy H5 format files (`.h5` extension). Note that the legacy SavedModel format is not supported "
               "by `load_model()` in Keras 3. In order to reload a TensorFlow SavedModel as an inference-only layer in "
               "Keras 3, use `keras.layers.TFSMLayer(/opt/smenv/model, call_endpoint='serving_default')` (note that your "
               "`call_endpoint` might have a different name)."),
        make_plan(tf="2.16.1", keras_major=3, fmt="keras-savedmodel", producer="2.15.0"),
        {},
        "keras_format_mismatch",
        ("tf-keras==2.16.*",),
        ["tf-keras==2.16.*"],
    ),
    (
        "companion module missing",
        failed("load", "ModuleNotFoundError", "No module named 'tensorflow_text'"),
        make_plan(),
        {},
        "missing_module",
        ("tensorflow-text==2.15.*",),
        ["tensorflow-text==2.15.*"],
    ),
    (
        "custom object's module missing",
        failed("load", "ModuleNotFoundError", "No module named 'smenv_fixture_layers'"),
        make_plan(fmt="h5", producer=None, keras_version="2.15.0", custom_objects=[SCALE_SHIFT]),
        {},
        "missing_module",
        (),
        ["--code path/to/smenv_fixture_layers"],
    ),
    (
        "unrelated module missing",
        failed("load", "ModuleNotFoundError", "No module named 'sklearn'"),
        make_plan(),
        {},
        "missing_module",
        (),
        ["sklearn", "requirements.txt"],
    ),
    (
        "module of an installed package missing (needs another version)",
        failed("load", "ModuleNotFoundError", "No module named 'numpy._core'"),
        make_plan(),
        {},
        "missing_module",
        (),
        ["numpy 1.26.4 is installed"],
    ),
    (
        "NumPy 2 under a TensorFlow built for NumPy 1.x",
        failed("import", "ImportError", "numpy.core.umath failed to import", traceback=NUMPY2_TRACEBACK),
        make_plan(lock={"numpy": "2.0.1"}),
        {},
        "numpy_abi",
        ("numpy<2",),
        ["numpy<2"],
    ),
    (
        "graph needs a newer TensorFlow (versions.cc)",
        # core/framework/versions.cc, CheckVersions()
        failed("load", "InvalidArgumentError", "GraphDef min consumer version 1700 above current version 1645 for "
               "TensorFlow 2.15.1.  Please upgrade TensorFlow."),
        make_plan(tf="2.15.1", producer="2.17.0"),
        {},
        "savedmodel_too_new",
        (),
        ["--tf-version 2.17.0"],
    ),
    (
        "op attr unknown to the image's TensorFlow (node_def_util.cc)",
        # core/framework/node_def_util.cc, ValidateNodeDef()
        failed("load", "InvalidArgumentError", "NodeDef mentions attr 'explicit_paddings' not in Op<name=Conv2D; "
               "signature=input:T, filter:T -> output:T; attr=T:type,allowed=[DT_HALF, DT_FLOAT]>; NodeDef: {{node conv1}}. "
               "(Check whether your GraphDef-interpreting binary is up to date with your GraphDef-generating binary.)."),
        make_plan(tf="1.15.5", producer="2.4.0"),
        {},
        "savedmodel_too_new",
        (),
        ["--tf-version 2.4.0"],
    ),
    (
        "weights-only .h5",
        # tf_keras/src/saving/legacy/hdf5_format.py, load_model_from_hdf5()
        failed("load", "ValueError", "No model config found in the file at /opt/smenv/model/weights.h5."),
        make_plan(fmt="h5", producer=None, keras_version="2.15.0"),
        {},
        "weights_only",
        (),
        ["model.save"],
    ),
    (
        "weights that do not fit the --model-builder's model (legacy HDF5 reader)",
        # keras/src/legacy/saving/legacy_h5_format.py, load_weights_from_hdf5_group()
        failed("load", "ValueError", "Shape mismatch in layer #0 (named hidden)for weight hidden/kernel. Weight expects "
               "shape (4, 8). Received saved weight with shape (4, 4)"),
        make_plan(fmt="h5", producer=None, keras_version="2.15.0", model_builder="my_model:build"),
        {},
        "weights_mismatch",
        (),
        ["my_model:build", "same shapes"],
    ),
    (
        "weights that do not fit the --model-builder's model (TensorFlow 2.15's assignment check)",
        # What tests/test_docker_build.py meets with tf215-weights.h5 and a too wide hidden layer.
        failed("load", "ValueError", "Cannot assign value to variable ' hidden/kernel:0': Shape mismatch.The variable "
               "shape (4, 8), and the assigned value shape (4, 4) are incompatible."),
        make_plan(fmt="h5", producer=None, keras_version="2.15.0", model_builder="my_model:build"),
        {},
        "weights_mismatch",
        (),
        ["my_model:build", "same shapes"],
    ),
    (
        "weights that do not fit the --model-builder's model (Keras 3 .weights.h5)",
        # keras/src/backend/common/variables.py, KerasVariable.assign()
        failed("load", "ValueError", "The shape of the target variable and the shape of the target value in "
               "`variable.assign(value)` must match. variable.shape=(4, 8), Received: value.shape=(4, 4). Target variable: "
               "<KerasVariable shape=(4, 8), dtype=float32, path=hidden/kernel>"),
        make_plan(tf="2.17.1", keras_major=3, fmt="h5", producer=None, model_builder="my_model:build"),
        {},
        "weights_mismatch",
        (),
        ["my_model:build", "same shapes"],
    ),
    (
        "a shape mismatch without --model-builder is not blamed on a builder",
        failed("load", "ValueError", "Shape mismatch in layer #0 (named hidden)for weight hidden/kernel."),
        make_plan(fmt="h5", producer=None, keras_version="2.15.0"),
        {},
        "load_failed",
        (),
        [],
    ),
    (
        "Lambda bytecode from another Python (legacy .h5, no safe mode)",
        # Python's marshal.loads() (Python/marshal.c), called by Keras's func_load() on the Lambda's code.
        failed("load", "ValueError", "bad marshal data (unknown type code)"),
        make_plan(fmt="h5", producer=None, keras_version="2.15.0",
                  custom_objects=[{"class_name": "Lambda", "module": None, "registered_name": None, "kind": "lambda"}]),
        {},
        "lambda_safe_mode",
        (),
        ["--python", "Python minor"],
    ),
    (
        "bad marshal data in a model without a Lambda layer",
        failed("load", "ValueError", "bad marshal data (unknown type code)"),
        make_plan(fmt="h5", producer=None, keras_version="2.15.0"),
        {},
        "load_failed",
        (),
        [],
    ),
    (
        "tensorflow-probability too new for the TensorFlow",
        # tensorflow_probability/python/__init__.py, _ensure_tf_install()
        failed("load", "ImportError", "This version of TensorFlow Probability requires TensorFlow version >= 2.16; Detected "
               "an installation of version 2.15.1. Please upgrade TensorFlow to proceed."),
        make_plan(),
        {},
        "load_failed",
        ("tensorflow-probability~=0.23.0",),
        ["tensorflow-probability~=0.23.0"],
    ),
    (
        "time limit",
        None,
        make_plan(),
        {"timed_out": True, "logs": "smenv-verify: TensorFlow 2.15.1 imported in 4.2s\n"},
        "timeout",
        (),
        ["--timeout"],
    ),
    (
        "OOM kill reported by Docker",
        None,
        make_plan(),
        {"oom_killed": True, "exit_code": 137},
        "out_of_memory",
        (),
        ["--memory"],
    ),
    (
        "exit 137 with no result",
        None,
        make_plan(),
        {"exit_code": 137, "logs": "smenv-verify: TensorFlow 2.15.1 imported in 4.2s\n"},
        "out_of_memory",
        (),
        ["--memory"],
    ),
    (
        "segfault after NumPy's ABI warning (no result)",
        None,
        make_plan(lock={"numpy": "2.0.1"}),
        {"exit_code": 139, "logs": NUMPY2_TRACEBACK},
        "numpy_abi",
        ("numpy<2",),
        ["numpy<2"],
    ),
    (
        "illegal instruction (no AVX)",
        None,
        make_plan(),
        {"exit_code": 132, "logs": ""},
        "load_failed",
        (),
        ["AVX"],
    ),
    (
        "unrecognised load error",
        failed("load", "OSError", "Unable to open file (truncated file: eof = 1024, sblock->base_addr = 0, stored_eof = 4096)\nmore"),
        make_plan(fmt="h5", producer=None, keras_version="2.15.0"),
        {},
        "load_failed",
        (),
        [],
    ),
    (
        "call with synthetic input fails",
        {
            **failed("call", "RuntimeError", "signature serving_default failed: Input to reshape is a tensor with 1 values, "
                     "but the requested shape has 224"),
            "signatures": [{"name": "serving_default", "primary": True, "error": {"type": "InvalidArgumentError", "message": "..."}}],
        },
        make_plan(),
        {},
        "call_failed",
        (),
        ["--sample-input"],
    ),
]


@pytest.mark.parametrize("result, plan, kwargs, kind, packages, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_diagnose(result, plan, kwargs, kind, packages, words):
    d = diagnose(result, plan, **kwargs)
    assert (d.kind, d.exit_code, d.fix_packages) == (kind, KINDS[kind], packages), d
    for word in words:
        assert word in d.fix, (word, d.fix)
    # One plain line: no newline, no traceback.
    assert d.summary and "\n" not in d.summary and "Traceback" not in d.summary
    assert d.fix and "\n" not in d.fix



# -- failures the fixture generator recorded as TensorFlow/Keras printed them ------------------------

FIXTURES = Path(__file__).parent / "fixtures" / "models"
EXPECTED = json.loads((FIXTURES / "EXPECTED.json").read_text(encoding="utf-8"))
ENVIRONMENTS = json.loads((FIXTURES / "ENVIRONMENTS.json").read_text(encoding="utf-8"))

# Every failure message in EXPECTED.json (an "error" or "..._error" key, at any depth of a fixture's
# record) -> (the exception type the generator caught, kind, --fix packages, words the fix must
# contain). A failure recorded later fails test_every_recorded_failure_is_listed until it is added here.
RECORDED_FAILURES = {
    # tests/fixtures/generators/tf218.py: keras.saving.load_model() in safe mode, Keras 3.8.0
    ("tf218-keras3-lambda.keras", "safe_mode_load_error"): (
        "ValueError", "lambda_safe_mode", (), ["--unsafe-deserialization", "safe_mode=False", "Python minor", "the image has 3.11"],
    ),
}


def recorded_failures() -> dict[tuple[str, str], str]:
    found = {}

    def walk(fixture: str, path: list[str], value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(fixture, [*path, key], inner)
        elif path and (path[-1] == "error" or path[-1].endswith("_error")) and value:
            found[(fixture, ".".join(path))] = value

    for fixture, record in EXPECTED.items():
        walk(fixture, [], record)
    return found


def plan_for_fixture(name: str) -> dict:
    """The plan of an image like the environment that printed the failure: its TensorFlow, Keras,
    NumPy and Python (ENVIRONMENTS.json), and what smenv reads from the fixture itself."""
    record = EXPECTED[name]
    env = ENVIRONMENTS[record["env"]]
    pins = {}
    for line in env["pip_freeze"]:
        package, _, version = line.partition("==")
        pins[package.lower().replace("_", "-")] = version
    tf = pins.get("tensorflow-cpu") or pins["tensorflow"]
    keras = pins["keras"]
    return make_plan(
        tf=tf,
        keras_major=int(keras.split(".")[0]),
        fmt=record["format"],
        python=".".join(env["python_version"].split(".")[:2]),
        lock={"keras": keras, "numpy": pins["numpy"]},
        model=inspect_model(FIXTURES / name).to_json(),
    )


def test_every_recorded_failure_is_listed():
    assert set(recorded_failures()) == set(RECORDED_FAILURES)


@pytest.mark.parametrize("where", sorted(RECORDED_FAILURES), ids=["/".join(w) for w in sorted(RECORDED_FAILURES)])
def test_recorded_failure_is_classified(where):
    type_, kind, packages, words = RECORDED_FAILURES[where]
    message = recorded_failures()[where]
    d = diagnose(failed("load", type_, message), plan_for_fixture(where[0]))
    assert (d.kind, d.exit_code, d.fix_packages) == (kind, KINDS[kind], packages), d
    for word in words:
        assert word in d.fix, (word, d.fix)


# -- Lambda safe mode: what each Keras generation prints (keras-team/keras, at the tags named) -------

_KERAS2_PLAN = {"tf": "2.15.1", "keras_major": 2, "keras_version": "2.15.0", "python": "3.11"}
_KERAS38_PLAN = {"tf": "2.18.1", "keras_major": 3, "keras_version": "3.8.0", "python": "3.11"}
_KERAS310_PLAN = {"tf": "2.20.0", "keras_major": 3, "keras_version": "3.10.0", "python": "3.12"}
_KERAS312_PLAN = {"tf": "2.21.0", "keras_major": 3, "keras_version": "3.12.0", "python": "3.12"}
# id -> (plan, message)
LAMBDA_REFUSALS = {
    # v2.12.0-v2.15.0 keras/layers/core/lambda_layer.py, Lambda._parse_function_from_config()
    "keras 2.12-2.15 Lambda layer": (_KERAS2_PLAN,
        "Requested the deserialization of a Lambda layer with a Python `lambda` inside it. This carries a potential "
        "risk of arbitrary code execution and thus it is disallowed by default. If you trust the source of the saved "
        "model, you can pass `safe_mode=False` to the loading function in order to allow Lambda layer loading."),
    # v2.12.0-v2.15.0 keras/layers/rnn/cell_wrappers.py, _parse_config_to_function()
    "keras 2.12-2.15 cell wrapper": (_KERAS2_PLAN,
        "Requested the deserialization of a layer with a Python `lambda` inside it. This carries a potential risk of "
        "arbitrary code execution and thus it is disallowed by default. If you trust the source of the saved model, you "
        "can pass `safe_mode=False` to the loading function in order to allow `lambda` loading."),
    # v2.12.0-v2.15.0 keras/saving/serialization_lib.py, deserialize_keras_object()
    "keras 2.12-2.15 lambda object": (_KERAS2_PLAN,
        "Requested the deserialization of a `lambda` object. This carries a potential risk of arbitrary code execution "
        "and thus it is disallowed by default. If you trust the source of the saved model, you can pass "
        "`safe_mode=False` to the loading function in order to allow `lambda` loading."),
    # v3.0.0-v3.9.2 keras/src/layers/core/lambda_layer.py, Lambda._raise_for_lambda_deserialization(): not an
    # f-string, so `{arg_name}` is printed as is (the message recorded in EXPECTED.json, Keras 3.8.0)
    "keras 3.0-3.9 Lambda layer": (_KERAS38_PLAN,
        "The `{arg_name}` of this `Lambda` layer is a Python lambda. Deserializing it is unsafe. If you trust the "
        "source of the config artifact, you can override this error by passing `safe_mode=False` to `from_config()`, "
        "or calling `keras.config.enable_unsafe_deserialization()."),
    # v3.10.0-v3.11.2, the same made an f-string
    "keras 3.10-3.11.2 Lambda layer": (_KERAS310_PLAN,
        "The `function` of this `Lambda` layer is a Python lambda. Deserializing it is unsafe. If you trust the "
        "source of the config artifact, you can override this error by passing `safe_mode=False` to `from_config()`, "
        "or calling `keras.config.enable_unsafe_deserialization()."),
    # v3.11.3 and later
    "keras 3.11.3+ Lambda layer": (_KERAS312_PLAN,
        "Requested the deserialization of a `Lambda` layer whose `function` is a Python lambda. This carries a "
        "potential risk of arbitrary code execution and thus it is disallowed by default. If you trust the source of "
        "the artifact, you can override this error by passing `safe_mode=False` to the loading function, or calling "
        "`keras.config.enable_unsafe_deserialization()."),
    # v3.0.0-v3.11.2 keras/src/saving/serialization_lib.py, deserialize_keras_object()
    "keras 3.0-3.11.2 lambda object": (_KERAS38_PLAN,
        "Requested the deserialization of a `lambda` object. This carries a potential risk of arbitrary code execution "
        "and thus it is disallowed by default. If you trust the source of the saved model, you can pass "
        "`safe_mode=False` to the loading function in order to allow `lambda` loading, or call "
        "`keras.config.enable_unsafe_deserialization()`."),
    # v3.11.3 and later, the same
    "keras 3.11.3+ lambda object": (_KERAS312_PLAN,
        "Requested the deserialization of a Python lambda. This carries a potential risk of arbitrary code execution "
        "and thus it is disallowed by default. If you trust the source of the artifact, you can override this error by "
        "passing `safe_mode=False` to the loading function, or calling `keras.config.enable_unsafe_deserialization()."),
}


@pytest.mark.parametrize("plan, message", LAMBDA_REFUSALS.values(), ids=list(LAMBDA_REFUSALS))
def test_lambda_refused_by_safe_mode(plan, message):
    d = diagnose(failed("load", "ValueError", message), make_plan(fmt="keras", producer=None, **plan))
    assert (d.kind, d.exit_code, d.fix_packages) == ("lambda_safe_mode", 27, ()), d
    for word in ("safe_mode=False", "Python minor", f"the image has {plan['python']}"):
        assert word in d.fix, (word, d.fix)


def test_the_keras_3_8_refusal_is_the_recorded_one():
    # The generator keeps the first line of what Keras printed; the template above is all of it.
    recorded = recorded_failures()[("tf218-keras3-lambda.keras", "safe_mode_load_error")]
    assert LAMBDA_REFUSALS["keras 3.0-3.9 Lambda layer"][1] == recorded

def test_tensorflow_text_summary_and_details():
    d = diagnose(failed("load", "FileNotFoundError", OP_NOT_REGISTERED.format(op="NormalizeUTF8")), make_plan(tf="2.15.1"))
    assert d.summary == "the model uses op NormalizeUTF8, which TensorFlow 2.15.1 does not provide"
    assert d.fix == "add tensorflow-text==2.15.* to requirements.txt (or rerun with --fix)"
    assert d.details == {"stage": "load", "op": "NormalizeUTF8", "release": "2.15.1", "package": "tensorflow-text",
                         "requirement": "tensorflow-text==2.15.*"}


def test_custom_class_details():
    result = failed("load", "ValueError", UNKNOWN_LAYER.format(name="ScaleShift"))
    d = diagnose(result, make_plan(fmt="h5", producer=None, keras_version="2.15.0", custom_objects=[SCALE_SHIFT]))
    assert d.details["class_name"] == "ScaleShift" and d.details["module"] == "smenv_fixture_layers"
    assert "ScaleShift" in d.summary and "smenv_fixture_layers" in d.summary


def test_fallback_names_the_exception_and_first_line_only():
    result = failed("load", "OSError", "Unable to open file (truncated file)\nsecond line")
    d = diagnose(result, make_plan())
    assert d.summary == "loading the model failed with OSError: Unable to open file (truncated file)"
    assert d.details["error_type"] == "OSError"


def test_message_outranks_traceback():
    # The traceback of a chained exception mentions a missing module; the raised message names the class.
    result = failed("load", "TypeError", COULD_NOT_LOCATE.format(name="ScaleShift", module="smenv_fixture_layers", reg="Custom>ScaleShift"),
                    traceback="ModuleNotFoundError: No module named 'smenv_fixture_layers'\n\nDuring handling ...")
    d = diagnose(result, make_plan(tf="2.18.1", keras_major=3, fmt="keras", producer=None, keras_version="3.8.0"))
    assert d.kind == "unknown_object"


def test_ok_result_with_a_bad_exit_code_is_still_explained():
    result = {"ok": True, "stage": "done", "signatures": [], "timings": {}}
    d = diagnose(result, make_plan(), exit_code=1)
    assert d.kind == "load_failed" and "exit" in d.summary


def test_to_json_and_contract():
    d = diagnose(None, make_plan(), oom_killed=True)
    data = d.to_json()
    assert set(data) == {"kind", "exit_code", "summary", "fix", "details", "fix_packages"}
    assert data["fix_packages"] == [] and data["exit_code"] == 29
    assert isinstance(d, Diagnosis)
    # The CLI contract: these numbers never change.
    assert KINDS == {
        "op_not_registered": 20, "unknown_object": 21, "keras_format_mismatch": 22, "missing_module": 23,
        "numpy_abi": 24, "savedmodel_too_new": 25, "weights_only": 26, "weights_mismatch": 26, "lambda_safe_mode": 27,
        "timeout": 28, "out_of_memory": 29, "load_failed": 30, "call_failed": 31,
    }


def test_minimal_plan_does_not_crash():
    # A dry-run plan has no lock and no image code.
    plan = {"model": {}, "environment": {"tensorflow_version": "2.15.1"}, "lock": None, "image": {}}
    d = diagnose(failed("load", "FileNotFoundError", OP_NOT_REGISTERED.format(op="NormalizeUTF8")), plan)
    assert d.fix_packages == ("tensorflow-text==2.15.*",)


def test_obscure_keras2_error_is_explained_by_the_models_own_custom_objects():
    # tf.keras 2.15, a .keras model whose custom layer's module is absent (seen in tests/test_docker_build.py).
    plan = {
        "environment": {"tensorflow_version": "2.15.1", "keras_major": 2, "loader": "keras"},
        "model": {"custom_objects": [{"class_name": "ScaleShift", "module": "smenv_fixture_layers",
                                      "registered_name": "smenv_fixtures>ScaleShift", "kind": "class"}]},
        "image": {"code": []},
    }
    result = {"ok": False, "stage": "load", "error": {"type": "TypeError", "message": "'str' object is not callable", "traceback": ""}}
    d = diagnose(result, plan)
    assert d.kind == "unknown_object" and d.exit_code == 21
    assert "ScaleShift" in d.summary and "--code path/to/smenv_fixture_layers" in d.fix
    plan["image"]["code"] = ["smenv_fixture_layers.py"]  # with the module in the image, no such claim
    assert diagnose(result, plan).kind == "load_failed"
