"""What the verifier feeds a model, read from the model's own configs and signatures (smenv/model/input_hints.py).

The configs below are written the way Keras writes them (legacy `.h5`/keras_metadata serialisation for
Keras 2, `keras_history` nodes for Keras 3); the two cases of issue 10 are among them: a Keras 2.8
Sequential text model (Embedding over 20 token ids, vocabulary 1188, whose InputLayer says float32), and
a Conv1D + Cropping1D model whose input length is unknown. No TensorFlow on the host: the end-to-end case
writes the config into a minimal `.h5` (attributes only, as smenv's reader reads it).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import CORPUS, FIXTURES
from smenv.model import input_hints
from smenv.model.input_hints import LADDER, MAX_LENGTH, keras_hint, signature_hints
from smenv.model.inspect import inspect_model
from smenv.model.keras_config import model_signature
from smenv.runtime import verify

MODELS = FIXTURES / "models"


def layer(class_name: str, name: str, inbound: list[str] | None = None, **config) -> dict:
    """A layer entry of a legacy functional config (inbound_nodes [[["name", 0, 0, {}]]])."""
    entry = {"class_name": class_name, "config": {"name": name, "trainable": True, "dtype": "float32", **config}, "name": name}
    if inbound is not None:
        entry["inbound_nodes"] = [[[n, 0, 0, {}] for n in inbound]] if inbound else []
    return entry


def functional(layers: list[dict], inputs: list[str], outputs: list[str]) -> dict:
    return {"class_name": "Functional", "config": {"name": "model", "layers": layers,
                                                   "input_layers": [[n, 0, 0] for n in inputs],
                                                   "output_layers": [[n, 0, 0] for n in outputs]}}


def input_layer(name: str, shape: list, dtype: str = "float32", inbound: bool = True) -> dict:
    entry = {"class_name": "InputLayer",
             "config": {"batch_input_shape": shape, "dtype": dtype, "sparse": False, "ragged": False, "name": name},
             "name": name}
    if inbound:
        entry["inbound_nodes"] = []
    return entry


# Keras 2.8, tf.keras.Sequential([Embedding(1188, 16, input_length=20), GlobalAveragePooling1D(), Dense(1)]):
# the InputLayer Keras made carries the Embedding's dtype, float32.
KERAS28_TEXT = {
    "class_name": "Sequential",
    "config": {"name": "sequential", "layers": [
        input_layer("embedding_input", [None, 20], inbound=False),
        {"class_name": "Embedding", "config": {
            "name": "embedding", "trainable": True, "batch_input_shape": [None, 20], "dtype": "float32",
            "input_dim": 1188, "output_dim": 16, "embeddings_initializer": {"class_name": "RandomUniform", "config": {}},
            "embeddings_regularizer": None, "activity_regularizer": None, "embeddings_constraint": None,
            "mask_zero": False, "input_length": 20}},
        {"class_name": "GlobalAveragePooling1D", "config": {"name": "global_average_pooling1d", "data_format": "channels_last"}},
        {"class_name": "Dense", "config": {"name": "dense", "units": 1, "activation": "sigmoid"}},
    ]},
}

# A signal model whose length is unknown: Conv1D(kernel 5, valid) then Cropping1D((2, 2)) need 9 steps.
CONV_CROP = functional(
    [
        input_layer("signal", [None, None, 8]),
        layer("Conv1D", "conv1d", ["signal"], filters=4, kernel_size=[5], strides=[1], padding="valid",
              data_format="channels_last", dilation_rate=[1]),
        layer("Cropping1D", "cropping1d", ["conv1d"], cropping=[2, 2]),
        layer("GlobalMaxPooling1D", "global_max_pooling1d", ["cropping1d"]),
        layer("Dense", "dense", ["global_max_pooling1d"], units=1),
    ],
    ["signal"], ["dense"],
)


def hint_for(config: dict):
    return keras_hint(config, model_signature(config))


def test_keras28_embedding_input_gets_ids_below_the_vocabulary():
    hint = hint_for(KERAS28_TEXT)
    (x,) = hint.inputs
    assert (x.name, x.dtype, x.shape) == ("embedding_input", "float32", (None, 20))
    assert (x.values, x.low, x.high) == ("ids", 0, 1188)
    assert "Embedding 'embedding'" in x.because and "1188" in x.because
    assert hint.lengths == ()  # the length is known: 20


def test_old_sequential_without_input_layer():
    # Keras <= 2.2 wrote a Sequential's config as the list of its layers; the first carries the shape.
    config = {"class_name": "Sequential", "config": [KERAS28_TEXT["config"]["layers"][1], KERAS28_TEXT["config"]["layers"][2]]}
    (x,) = hint_for(config).inputs
    assert (x.name, x.values, x.high) == ("embedding", "ids", 1188)


def test_unknown_length_is_long_enough_for_conv1d_and_cropping1d():
    hint = hint_for(CONV_CROP)
    (x,) = hint.inputs
    assert (x.values, x.shape) == ("normal", (None, None, 8))
    assert hint.lengths[0] == 9 and all(n >= 9 for n in hint.lengths)
    assert "Cropping1D 'cropping1d' rejects length 8" in hint.because


def test_without_constraints_the_ladder_is_tried():
    config = functional([input_layer("x", [None, None, 3]), layer("Dense", "d", ["x"], units=2)], ["x"], ["d"])
    hint = hint_for(config)
    assert hint.lengths == LADDER and hint.because is None


def keras3(layers: list[dict], inputs: list[str], outputs: list[str]) -> dict:
    """A Keras 3 functional config: `keras_history` nodes, `batch_shape`, DTypePolicy objects."""
    out = []
    for entry in layers:
        entry = json.loads(json.dumps(entry))
        if entry["class_name"] == "InputLayer":
            conf = entry["config"]
            conf["batch_shape"] = conf.pop("batch_input_shape")
            entry["inbound_nodes"] = []
        else:
            sources = [n[0] for n in entry["inbound_nodes"][0]]
            entry["inbound_nodes"] = [{"args": [{"class_name": "__keras_tensor__", "config": {
                "shape": [None], "dtype": "float32", "keras_history": [s, 0, 0]}} for s in sources], "kwargs": {}}]
            entry["config"]["dtype"] = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}
        entry["module"] = "keras.layers"
        out.append(entry)
    model = functional(out, inputs, outputs)
    model["module"] = "keras.src.models.functional"
    return model


def test_keras3_int_ids_with_unknown_length_through_conv_and_pooling():
    config = keras3(
        [
            input_layer("tokens", [None, None], dtype="int32"),
            layer("Embedding", "embed", ["tokens"], input_dim=500, output_dim=8),
            layer("Conv1D", "conv", ["embed"], filters=4, kernel_size=[7], strides=[1], padding="valid", dilation_rate=[1]),
            layer("MaxPooling1D", "pool", ["conv"], pool_size=[2], strides=[2], padding="valid"),
            layer("Conv1D", "conv2", ["pool"], filters=4, kernel_size=[7], strides=[1], padding="valid", dilation_rate=[1]),
            layer("GlobalAveragePooling1D", "gap", ["conv2"]),
        ],
        ["tokens"], ["gap"],
    )
    hint = hint_for(config)
    (x,) = hint.inputs
    assert (x.dtype, x.values, x.high) == ("int32", "ids", 500)
    # L - 6 after conv, floor((L - 8) / 2) + 1 after the pool, and 7 needed by conv2: L >= 20.
    assert hint.lengths == (20, 32, 128)
    assert "'conv2' rejects length 19" in hint.because


def test_same_padding_and_dilation():
    config = functional(
        [
            input_layer("x", [None, None, 1]),
            layer("Conv1D", "same", ["x"], kernel_size=[9], strides=[4], padding="same", dilation_rate=[1]),
            layer("Conv1D", "dilated", ["same"], kernel_size=[3], strides=[1], padding="valid", dilation_rate=[4]),
        ],
        ["x"], ["dilated"],
    )
    # ceil(L / 4) >= 4 * (3 - 1) + 1 = 9: L >= 33.
    assert hint_for(config).lengths == (33, 128)


def test_images_of_unknown_size_with_conv2d_and_cropping2d():
    config = functional(
        [
            input_layer("image", [None, None, None, 3]),
            layer("Conv2D", "c", ["image"], kernel_size=[3, 3], strides=[2, 2], padding="valid", dilation_rate=[1, 1]),
            layer("Cropping2D", "crop", ["c"], cropping=[[4, 4], [1, 1]]),
            layer("ZeroPadding2D", "pad", ["crop"], padding=[[1, 1], [1, 1]]),
            layer("UpSampling2D", "up", ["pad"], size=[2, 2]),
            layer("Conv2DTranspose", "t", ["up"], kernel_size=[3, 3], strides=[1, 1], padding="valid"),
        ],
        ["image"], ["t"],
    )
    # (L - 3) // 2 + 1 - 8 >= 1: L >= 19.
    assert hint_for(config).lengths == (19, 32, 128)


def test_wrappers_and_nested_models():
    inner = {"class_name": "Sequential", "config": {"name": "inner", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, None], "dtype": "int32", "name": "inner_in"}},
        {"class_name": "Embedding", "config": {"name": "inner_embed", "input_dim": 77, "output_dim": 4}},
        {"class_name": "Conv1D", "config": {"name": "inner_conv", "kernel_size": 4, "padding": "valid"}},
    ]}, "name": "inner", "inbound_nodes": [[["ids", 0, 0, {}]]]}
    config = functional(
        [
            input_layer("ids", [None, None], dtype="int32"),
            inner,
            layer("Bidirectional", "bi", ["inner"], layer={"class_name": "LSTM", "config": {"name": "lstm", "units": 2, "return_sequences": True}}),
            layer("TimeDistributed", "td", ["bi"], layer={"class_name": "Dense", "config": {"name": "dense", "units": 1}}),
            layer("Cropping1D", "crop", ["td"], cropping=3),
        ],
        ["ids"], ["crop"],
    )
    hint = hint_for(config)
    (x,) = hint.inputs
    assert (x.values, x.high) == ("ids", 77)
    assert hint.lengths[0] == 10  # 4 - 1 for the nested Conv1D, then 3 + 3 cropped


def test_time_distributed_embedding_and_string_input():
    config = functional(
        [
            input_layer("words", [None, 5, 3], dtype="int64"),
            layer("TimeDistributed", "td", ["words"], layer={"class_name": "Embedding", "config": {"name": "e", "input_dim": 9}}),
            input_layer("text", [None], dtype="string"),
            layer("TextVectorization", "tv", ["text"], max_tokens=100),
            layer("Concatenate", "cat", ["td", "tv"]),
        ],
        ["words", "text"], ["cat"],
    )
    words, text = hint_for(config).inputs
    assert (words.values, words.high) == ("ids", 9)
    assert (text.dtype, text.values) == ("string", "text")


def test_dropout_between_input_and_embedding_keeps_ids():
    config = functional(
        [input_layer("x", [None, 4]), layer("Dropout", "drop", ["x"], rate=0.5),
         layer("CategoryEncoding", "enc", ["drop"], num_tokens=12, output_mode="multi_hot")],
        ["x"], ["enc"],
    )
    (x,) = hint_for(config).inputs
    assert (x.values, x.low, x.high) == ("ids", 0, 12) and "CategoryEncoding 'enc'" in x.because


def test_no_length_fits():
    config = functional(
        [input_layer("x", [None, None, 1]), layer("Cropping1D", "crop", ["x"], cropping=[MAX_LENGTH, 0])], ["x"], ["crop"]
    )
    hint = hint_for(config)
    assert hint.lengths == LADDER and "no length" in hint.because


@pytest.mark.parametrize("config", [
    {"class_name": "Functional", "config": {"layers": "nope", "input_layers": []}},
    {"class_name": "Functional", "config": {"layers": [1, None, {"class_name": 3}], "input_layers": [[1, 2]]}},
    # a cycle: a -> b -> a
    functional([input_layer("x", [None, None, 2]), layer("Conv1D", "a", ["x", "b"], kernel_size=3),
                layer("Conv1D", "b", ["a"], kernel_size=[3, 3])], ["x"], ["b"]),
    functional([input_layer("x", [None, None, 2]), layer("Conv1D", "a", ["x"], kernel_size="3", strides=0),
                layer("MaxPooling1D", "p", ["a"], pool_size=True, strides=-1), layer("Cropping1D", "c", ["p"], cropping={"x": 1}),
                layer("Bidirectional", "bi", ["c"], layer=[]), layer("TimeDistributed", "td", ["bi"], layer={"class_name": None})],
               ["x"], ["td"]),
])
def test_hostile_configs_give_a_hint_or_none(config):
    signature = model_signature(config)
    hint = keras_hint(config, signature)
    assert hint is None or hint.signature == "keras_model"


def test_deeply_nested_models_are_bounded():
    model = {"class_name": "Embedding", "config": {"name": "e", "input_dim": 3}}
    for i in range(200):
        model = {"class_name": "Sequential", "name": f"m{i}", "config": {"name": f"m{i}", "layers": [model]},
                 "inbound_nodes": [[["x", 0, 0, {}]]]}
    config = functional([input_layer("x", [None, None]), model], ["x"], [model["name"]])
    assert hint_for(config).inputs[0].values == "normal"  # too deep to follow: the defaults


# -- real fixtures and corpus models --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tf215-full.h5", "tf215-keras2.keras", "tf218-keras3.keras", "tf212-keras2-savedmodel",
                                  "tf215-custom-layer.h5"])
def test_fixture_keras_models(name):
    facts = inspect_model(MODELS / name)
    keras = next(h for h in facts.call_hints if h.signature == "keras_model")
    (x,) = keras.inputs
    assert (x.name, x.dtype, x.shape, x.values) == ("x", "float32", (None, 4), "normal")
    assert keras.lengths == ()


def test_fixture_text_savedmodel_gets_text():
    facts = inspect_model(MODELS / "tf215-text-savedmodel")
    (hint,) = facts.call_hints
    assert hint.signature == "serving_default" and hint.inputs[0].values == "text"


def test_tf_example_signatures_get_a_serialised_example():
    facts = inspect_model(CORPUS / "tfserving-half-plus-two-cpu")
    hints = {h.signature: h for h in facts.call_hints}
    assert hints["classify_x_to_y"].inputs[0].values == "example"
    assert "ParseExample" in hints["classify_x_to_y"].inputs[0].because
    assert hints["serving_default"].inputs[0].values == "normal"
    # Features already parsed (a tf.Transform graph's string columns) are text, not protos.
    transform = inspect_model(CORPUS / "tfx-transform-fn")
    company = next(i for i in transform.call_hints[0].inputs if i.name == "company")
    assert company.values == "text" and transform.call_hints[0].lengths == LADDER


def test_signature_hints_skip_the_init_op_and_unknown_rank_needs_no_lengths():
    facts = inspect_model(CORPUS / "tfserving-half-plus-three")
    assert all(not h.signature.startswith("__") for h in facts.call_hints)
    assert all(h.lengths == () for h in facts.call_hints)  # shapes of unknown rank: one value per item
    assert signature_hints((), {}) == ()


def test_hints_reach_the_plan_json():
    data = json.loads(json.dumps(inspect_model(MODELS / "tf215-full.h5").to_json()))  # as written to smenv.json
    assert data["call_hints"] == [{
        "signature": "keras_model", "lengths": [], "because": None,
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 4], "values": "normal", "low": None, "high": None, "because": None}],
    }]


def write_h5(path: Path, config: dict, keras_version: str = "2.8.0") -> Path:
    """A legacy Keras .h5 as far as smenv reads one: the root attributes (no weights are ever read)."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = keras_version
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        f.create_group("model_weights")
    return path


def test_keras28_text_h5_end_to_end(tmp_path):
    facts = inspect_model(write_h5(tmp_path / "text.h5", KERAS28_TEXT))
    assert facts.keras_version == "2.8.0" and facts.layers["Embedding"] == 1
    (hint,) = facts.to_json()["call_hints"]
    assert hint["inputs"][0]["values"] == "ids" and hint["inputs"][0]["high"] == 1188


def test_conv_crop_h5_end_to_end(tmp_path):
    facts = inspect_model(write_h5(tmp_path / "signal.h5", CONV_CROP))
    (hint,) = facts.call_hints
    assert hint.lengths[0] == 9


# -- what the verifier makes of a hint (smenv/runtime/verify.py, run here with the host's NumPy) -----------


def call(specs, hint, invoke, samples=None):
    entry = {"name": "keras_model"}
    outputs, error = verify._call(entry, specs, samples or {}, hint, invoke, np)
    return entry, error


def test_verifier_feeds_ids_in_range_with_the_inputs_dtype():
    hint = plan_hint(KERAS28_TEXT)
    seen = []

    def embedding(values):
        (x,) = values
        seen.append(x)
        if x.min() < 0 or x.max() >= 1188:
            raise ValueError("indices[0,3] = -1 is not in [0, 1188)")
        return x

    entry, error = call([("embedding_input", "float32", [None, 20])], hint, embedding)
    assert error is None and entry["synthetic"] and "error" not in entry
    assert seen[0].dtype == np.float32 and seen[0].shape == (1, 20)
    assert entry["inputs"][0]["fed"] == "float32[1, 20] ids in [0, 1188)"
    # Without the hint (a plan from before hints), floats: what issue 10 saw rejected.
    entry, error = call([("embedding_input", "float32", [None, 20])], {}, embedding)
    assert isinstance(error, ValueError) and entry["checked"] is False and entry["synthetic"]


def plan_hint(config: dict) -> dict:
    """The hint as the verifier reads it from smenv.json."""
    return json.loads(json.dumps(asdict(hint_for(config))))


def test_verifier_tries_the_lengths_the_layers_accept():
    hint = plan_hint(CONV_CROP)

    def conv_crop(values):
        (x,) = values
        if x.shape[1] - 4 - 4 < 1:
            raise ValueError("Negative dimension size caused by subtracting 4 from 1 for 'cropping1d'")
        return x

    entry, error = call([("signal", "float32", [None, None, 8])], hint, conv_crop)
    assert error is None and entry["inputs"][0]["shape"] == [1, 9, 8] and "lengths_tried" not in entry
    # An old plan: the verifier's own ladder, the next length after a rejection.
    entry, error = call([("signal", "float32", [None, None, 8])], {}, lambda v: conv_crop(v) if v[0].shape[1] > 8 else conv_crop([v[0][:, :1]]))
    assert error is None and entry["lengths_tried"] == [8, 32]


def test_verifier_strings_and_examples():
    fed = []
    for values in ("text", "example"):
        entry, error = call([("s", "string", [None])], {"inputs": [{"name": "s", "values": values}]}, lambda v: fed.append(v[0]))
        assert error is None
    assert fed[0].tolist() == [verify.TEXT] and fed[1].tolist() == [b""]


def test_verifier_user_sample_is_not_made_up():
    sample = {"embedding": np.arange(20, dtype=np.int64).reshape(1, 20)}  # named without Keras 2's "_input"

    def reject(values):
        raise ValueError("bad input")

    entry, error = call([("embedding_input", "float32", [None, 20])], {}, reject, sample)
    assert isinstance(error, ValueError) and entry["synthetic"] is False
    verify._finish(entry, error, True, True)
    assert entry["fatal"] is True  # the user's own input: exit 31 on the host
    entry, error = call([("embedding_input", "float32", [None, 20])], {}, reject)
    verify._finish(entry, error, True, True)
    assert entry["fatal"] is False and entry["checked"] is False


def test_verifier_refuses_huge_made_up_inputs():
    entry, error = call([("x", "float32", [None, None, None, None])], {"lengths": [4096]}, lambda v: v)
    assert isinstance(error, ValueError) and "not allocated" in str(error)
