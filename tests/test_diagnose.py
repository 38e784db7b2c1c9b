"""smenv.verify.diagnose: real failure messages -> kind, exit code, fix and --fix packages.

Every message below copies the shape TensorFlow, Keras, NumPy or Python really prints; the comment
beside each names where it comes from.
"""

from __future__ import annotations

import pytest

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
) -> dict:
    """A smenv.json as smenv.pipeline writes it, reduced to the keys diagnose reads."""
    return {
        "model": {
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

# core/framework/op.cc, as TF2's saved_model/load.py re-raises it (FileNotFoundError + io_device hint).
OP_NOT_REGISTERED = (
    "Op type not registered '{op}' in binary running on 3f9c2a. Make sure the Op and Kernel are registered in the "
    "binary running in this process. Note that if you are loading a saved graph which used ops from tf.contrib "
    "(e.g. `tf.contrib.resampler`), accessing should be done before importing the graph, as contrib ops are lazily "
    "registered when the module is first accessed.\n You may be trying to load on a different device from the "
    "computational device. Consider setting the `experimental_io_device` option in `tf.saved_model.LoadOptions` "
    "to the io_device such as '/job:localhost'."
)
# keras/src/saving/serialization_lib.py, _retrieve_class_or_fn()
COULD_NOT_LOCATE = (
    "Could not locate class '{name}'. Make sure custom classes are decorated with "
    "`@keras.saving.register_keras_serializable()`. Full object config: {{'module': '{module}', 'class_name': "
    "'{name}', 'config': {{'name': 'scale_shift', 'trainable': True, 'dtype': 'float32'}}, 'registered_name': '{reg}', "
    "'build_config': {{'input_shape': [None, 4]}}, 'name': 'scale_shift', 'inbound_nodes': []}}"
)
# tf_keras/src/saving/legacy/serialization.py, class_and_config_for_serialized_keras_object()
UNKNOWN_LAYER = (
    "Unknown layer: '{name}'. Please ensure you are using a `keras.utils.custom_object_scope` and that this object "
    "is included in the scope. See https://www.tensorflow.org/guide/keras/save_and_serialize"
    "#registering_the_custom_object for details."
)
# numpy/_core/_multiarray_umath.py prints this, then the extension's import_array() fails.
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
        # InputLayer in Keras 2 has no `batch_shape` (Keras 3 renamed batch_input_shape).
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
        "Lambda layer refused by safe mode",
        # keras/src/layers/core/lambda_layer.py, _raise_for_lambda_deserialization()
        failed("load", "ValueError", "Requested the deserialization of a `Lambda` layer whose `function` is a Python lambda. "
               "This carries a potential risk of arbitrary code execution and thus it is disallowed by default. If you "
               "trust the source of the artifact, you can override this error by passing `safe_mode=False` to the loading "
               "function, or calling `keras.config.enable_unsafe_deserialization()."),
        make_plan(tf="2.18.1", keras_major=3, fmt="keras", producer=None, keras_version="3.8.0", python="3.12"),
        {},
        "lambda_safe_mode",
        (),
        ["safe_mode=False", "Python minor", "3.12"],
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
        "numpy_abi": 24, "savedmodel_too_new": 25, "weights_only": 26, "lambda_safe_mode": 27,
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
