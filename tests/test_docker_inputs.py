"""Made-up verification input against real TensorFlow (issue 10): real images, real containers, no mocks.

The models are made by TensorFlow 2.15 inside the TF 2.15 fixture image (the host has no TensorFlow),
then verified in that image with `verify_image(..., model=...)`, the way `smenv verify IMAGE MODEL` does:
- a Keras 2 text model (Embedding over 20 token ids, vocabulary 1188; its InputLayer says float32),
  which random floats made fail;
- a Conv1D + Cropping1D model whose input length is unknown, which a length-1 input made fail;
- a SavedModel whose signature only takes 7 columns, which no made-up length satisfies: "not checked",
  exit 0, and the user's own sample decides (exit 0 with the right one, 31 with a wrong one).
One build (dependencies cached with tests/test_docker_build.py's TF 2.15 images), then a few containers.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FIXTURES
from smenv import pipeline
from smenv.docker.engine import Sandbox
from smenv.env.resolve import ResolveOptions
from smenv.verify.runner import verify_image

pytestmark = pytest.mark.docker

MAKE_MODELS = """
import tensorflow as tf
tf.keras.utils.set_random_seed(0)
text = tf.keras.Sequential([
    tf.keras.layers.Embedding(1188, 16, input_length=20),
    tf.keras.layers.GlobalAveragePooling1D(),
    tf.keras.layers.Dense(1, activation="sigmoid"),
])
text.save("/out/text.h5")
signal = tf.keras.Input(shape=(None, 8), name="signal")
x = tf.keras.layers.Conv1D(4, 5)(signal)
x = tf.keras.layers.Cropping1D((2, 2))(x)
x = tf.keras.layers.GlobalMaxPooling1D()(x)
tf.keras.Model(signal, tf.keras.layers.Dense(1)(x)).save("/out/signal.h5")

class Seven(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="x")])
    def serve(self, x):
        tf.debugging.assert_equal(tf.shape(x)[1], 7, message="x must have 7 columns")
        return {"y": tf.reduce_sum(x, axis=1)}

seven = Seven()
tf.saved_model.save(seven, "/out/seven", signatures={"serving_default": seven.serve})
"""


@pytest.fixture(scope="module")
def tf215_image(base_image_311, docker_engine, tmp_path_factory):
    built = pipeline.build(pipeline.ModelInput(FIXTURES / "models" / "tf215-savedmodel"), None, ResolveOptions(),
                           engine=docker_engine, verify=False)
    return built.image


@pytest.fixture(scope="module")
def made(tf215_image, docker_engine, tmp_path_factory):
    out = tmp_path_factory.mktemp("made")
    out.chmod(0o777)
    docker_engine.client.containers.run(
        tf215_image, ["python", "-c", MAKE_MODELS], volumes={str(out): {"bind": "/out", "mode": "rw"}},
        network_mode="none", remove=True, environment={"HOME": "/tmp", "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    return out


def test_keras2_text_model_gets_token_ids(tf215_image, docker_engine, made):
    verdict = verify_image(docker_engine, tf215_image, Sandbox(timeout_s=300), model=made / "text.h5")
    assert verdict.ok and verdict.not_checked == (), verdict.to_json()
    (entry,) = verdict.result["signatures"]
    assert "error" not in entry and entry["outputs"][0]["shape"] == [1, 1]
    assert entry["inputs"][0]["fed"] == "float32[1, 20] ids in [0, 1188)"


def test_unknown_length_long_enough_for_conv1d_and_cropping1d(tf215_image, docker_engine, made):
    verdict = verify_image(docker_engine, tf215_image, Sandbox(timeout_s=300), model=made / "signal.h5")
    assert verdict.ok and verdict.not_checked == (), verdict.to_json()
    (entry,) = verdict.result["signatures"]
    assert entry["inputs"][0]["shape"] == [1, 9, 8] and "lengths_tried" not in entry


def test_input_no_made_up_length_fits_is_not_checked_and_the_users_sample_decides(tf215_image, docker_engine, made, tmp_path):
    verdict = verify_image(docker_engine, tf215_image, Sandbox(timeout_s=300), model=made / "seven")
    assert verdict.ok and verdict.exit_code == 0, verdict.to_json()
    (note,) = verdict.not_checked
    assert note.signature == "serving_default" and "x must have 7 columns" in verdict.result["signatures"][0]["error"]["message"]
    assert "made-up input" in note.reason and "lengths 8, 32, 128 tried" in note.reason and "--sample-input" in note.advice

    np.savez(tmp_path / "right.npz", x=np.ones((2, 7), np.float32))
    verdict = verify_image(docker_engine, tf215_image, Sandbox(timeout_s=300), model=made / "seven", sample_input=tmp_path / "right.npz")
    assert verdict.ok and verdict.not_checked == () and verdict.result["signatures"][0]["outputs"][0]["shape"] == [2]

    np.savez(tmp_path / "wrong.npz", x=np.ones((2, 3), np.float32))
    verdict = verify_image(docker_engine, tf215_image, Sandbox(timeout_s=300), model=made / "seven", sample_input=tmp_path / "wrong.npz")
    assert not verdict.ok and verdict.exit_code == 31 and verdict.diagnosis.kind == "call_failed"
    assert "your --sample-input" in verdict.diagnosis.fix
