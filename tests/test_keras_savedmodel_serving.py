"""A TFX Keras SavedModel, built with no flags and called as a TensorFlow Serving client calls it.

tfx-keras-serving (TF 2.3.1, Keras 2.4.0) holds tf.Transform's TransformFeaturesLayer. Its own release
cannot be built here, so the plan uses TF 2.7.4 on Python 3.9, where tensorflow-transform does not lock
(Apache Beam has no wheels for it): the package is optional in a Keras SavedModel (env/resolve.py,
_loads_without) and left out with a warning; Keras revives the layer from its saved functions.

The image serves the SavedModel's own signatures, as TF Serving would: `serving_default` takes
serialized tf.Example protos (`examples`, string) and parses them in the graph, so the request a TFX
client sends (`{"b64": ...}` per example) answers, with the signature's output name. Real engine, real
image, real HTTP.
"""

from __future__ import annotations

import base64
import json
import struct
import subprocess

import pytest
import requests

from conftest import CORPUS
from smenv import pipeline
from smenv.env.resolve import ResolveOptions
from test_serve_image import free_port, wait_ready

pytestmark = pytest.mark.docker

FEATURES = {"culmen_length_mm": 49.9, "culmen_depth_mm": 16.1, "flipper_length_mm": 213.0, "body_mass_g": 5400.0}


def _varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _field(number: int, payload: bytes) -> bytes:  # a length-delimited protobuf field
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def tf_example(floats: dict[str, float]) -> bytes:
    """tf.train.Example{features{feature{key: float_list{value}}}}, encoded by hand: TensorFlow is not a
    dependency (tensorflow/core/example/example.proto and feature.proto give the field numbers)."""
    entries = b""
    for key, value in sorted(floats.items()):
        feature = _field(2, _field(1, struct.pack("<f", value)))  # Feature.float_list, FloatList.value (packed)
        entries += _field(1, _field(1, key.encode()) + _field(2, feature))  # Features.feature map entry
    return _field(1, entries)  # Example.features


def test_a_tfx_keras_savedmodel_serves_its_own_signature_to_a_tf_serving_client(docker_engine):
    tag = "smenv-era/tfx-keras-serving:test"
    container = None
    try:
        built = pipeline.build(pipeline.ModelInput(CORPUS / "tfx-keras-serving"), None, ResolveOptions(),
                               tag=tag, engine=docker_engine)
        plan = built.generated.plan
        assert (plan.tensorflow_version, plan.exact_release) == ("2.7.4", "2.3.1")
        assert "tensorflow-transform" not in [p.name for p in plan.packages]
        assert any(n.startswith("warning: tensorflow-transform is not installed") for n in built.generated.notes)
        verdict = built.verdict.to_json()
        assert verdict["ok"] and verdict["load"]["ok"] and verdict["serve"]["ok"], verdict

        port = free_port()
        container = subprocess.run(["docker", "run", "-d", "-p", f"127.0.0.1:{port}:8501", "--read-only",
                                    "--tmpfs", "/tmp", tag], capture_output=True, text=True, check=True).stdout.strip()
        url = f"http://127.0.0.1:{port}"
        assert wait_ready(url, container)
        metadata = requests.get(f"{url}/v1/models/tfx-keras-serving/metadata", timeout=10).json()
        signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
        assert list(signature["inputs"]) == ["examples"] and list(signature["outputs"]) == ["output_0"]

        body = {"signature_name": "serving_default",
                "instances": [{"examples": {"b64": base64.b64encode(tf_example(FEATURES)).decode()}}]}
        answer = requests.post(f"{url}/v1/models/tfx-keras-serving:predict", data=json.dumps(body), timeout=60)
        assert answer.status_code == 200, answer.text
        (probabilities,) = answer.json()["predictions"]
        assert len(probabilities) == 3 and abs(sum(probabilities) - 1.0) < 1e-4  # the softmax over 3 species

        refused = requests.post(f"{url}/v1/models/tfx-keras-serving:predict", timeout=60,
                                json={"instances": [{"examples": {"b64": base64.b64encode(b"\xff not a proto").decode()}}]})
        assert refused.status_code == 400 and "error" in refused.json(), refused.text
    finally:
        if container:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        if docker_engine.image_info(tag) is not None:
            docker_engine.remove_image(tag, force=True)
