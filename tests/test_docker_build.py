"""smenv build and verify against the real Docker engine: real images, real containers, no mocks.

Builds share what they can: the base image is built once per session (conftest), wheels are cached
on the host, and the dependency stage is cached per lock, so the TF 2.15 cases build their
dependencies once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from conftest import CORPUS, FIXTURES, REPO
from smenv import pipeline
from smenv.docker.engine import THROWAWAY_LABEL, Sandbox
from smenv.env.resolve import ResolveOptions
from smenv.verify.runner import verify_image

pytestmark = pytest.mark.docker
MODELS = FIXTURES / "models"
USERCODE = FIXTURES / "usercode"


def build(model: Path, tmp_path: Path, requirements: str | None = None, engine=None, **kwargs) -> pipeline.Built:
    req = None
    if requirements is not None:
        req = tmp_path / "requirements.txt"
        req.write_text(requirements)
    options = ResolveOptions(**{k: kwargs.pop(k) for k in ("python", "tf_version", "unsafe_deserialization", "model_builder")
                               if k in kwargs})
    return pipeline.build(pipeline.ModelInput(model), req, options, engine=engine, **kwargs)


def served_predictions(engine, image: str, instances: list) -> list[float]:
    """`image` run as deployed (its own command, read-only root), asked TF Serving's `:predict` for
    `instances` under the model name its label gives; the predictions, flattened. The container is removed."""
    from test_serve_image import free_port, wait_ready

    port, container = free_port(), None
    try:
        container = subprocess.run(["docker", "run", "-d", "-p", f"127.0.0.1:{port}:8501", "--read-only", "--tmpfs", "/tmp",
                                    image], capture_output=True, text=True, check=True).stdout.strip()
        url = f"http://127.0.0.1:{port}"
        assert wait_ready(url, container)
        name = engine.image_info(image).labels["org.smenv.model.name"]
        answer = requests.post(f"{url}/v1/models/{name}:predict", json={"instances": instances}, timeout=60)
        assert answer.status_code == 200, answer.text
        return [value for row in answer.json()["predictions"] for value in row]
    finally:
        if container:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)


@pytest.fixture(scope="module")
def tf215(base_image_311, docker_engine, tmp_path_factory):
    return build(MODELS / "tf215-savedmodel", tmp_path_factory.mktemp("tf215"), engine=docker_engine)


def test_tf215_savedmodel_loads_on_cpu(tf215, docker_engine):
    verdict = tf215.verdict
    assert verdict.ok, verdict.to_json()
    assert verdict.result["tensorflow"] == "2.15.1" and verdict.result["python"].startswith("3.11")
    primary = verdict.result["signatures"][0]
    assert primary["name"] == "serving_default" and primary["primary"]
    assert primary["outputs"] == [{"name": "y", "dtype": "float32", "shape": [1, 1]}]
    info = docker_engine.image_info(tf215.image)
    assert info.labels["org.smenv.tensorflow.version"] == "2.15.1"
    assert info.labels["org.smenv.model.digest"] == tf215.generated.facts.digest
    assert info.labels["org.smenv.lock.digest"] == tf215.generated.lock.digest
    config = docker_engine.client.api.inspect_image(tf215.image)["Config"]
    assert config["User"] == "10001:10001"


def test_the_sandbox_has_no_network_and_a_read_only_root(tf215, docker_engine):
    probe = (
        "import socket, os\n"
        "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2); print('NET')\nexcept OSError: print('NONET')\n"
        "try:\n    open('/opt/smenv/x', 'w'); print('RW')\nexcept OSError: print('RO')\n"
        "print('UID', os.getuid())\n"
    )
    run = docker_engine.run_sandboxed(tf215.image, ["python", "-c", probe], Sandbox(timeout_s=60))
    assert run.exit_code == 0, run.stderr
    assert run.stdout.split() == ["NONET", "RO", "UID", "10001"]


def test_requirements_pinning_another_tf_still_get_the_producers(base_image_311, docker_engine, tmp_path):
    built = build(MODELS / "tf215-savedmodel", tmp_path, "tensorflow==2.13.0\nnumpy<2\n", engine=docker_engine)
    assert built.verdict.ok
    assert built.verdict.result["tensorflow"] == "2.15.1"
    warning = next(d for d in built.generated.plan.decisions if d.topic == "requirement:tensorflow")
    assert "2.13.0" in warning.reason and warning.level == "warning"


def test_keras3_archive_loads_on_its_tensorflow(base_image_311, docker_engine, tmp_path):
    built = build(MODELS / "tf218-keras3.keras", tmp_path, engine=docker_engine, python="3.11")
    assert built.verdict.ok, built.verdict.to_json()
    assert built.verdict.result["keras"] == "3.8.0"
    assert built.verdict.result["signatures"][0]["outputs"][0]["shape"] == [1, 1]


def test_a_lambda_is_refused_in_safe_mode_and_served_with_unsafe_deserialization(base_image_311, docker_engine, tmp_path):
    # The same lock as the Keras 3 case above: only the model layer differs, so the dependency image is shared.
    model = MODELS / "tf218-keras3-lambda.keras"
    refused = build(model, tmp_path / "a", engine=docker_engine, python="3.11")
    assert refused.exit_code == 27 and refused.verdict.diagnosis.kind == "lambda_safe_mode"
    assert "--unsafe-deserialization" in refused.verdict.diagnosis.fix
    assert "org.smenv.keras.safe_mode" not in docker_engine.image_info(refused.image).labels
    built = build(model, tmp_path / "b", engine=docker_engine, python="3.11", unsafe_deserialization=True)
    verdict = built.verdict.to_json()
    assert built.exit_code == 0 and verdict["load"]["ok"] and verdict["serve"]["ok"], verdict
    assert docker_engine.image_info(built.image).labels["org.smenv.keras.safe_mode"] == "false"
    # Loading and calling ran the Lambda (it doubles its input and touches a file in the tmpfs /tmp: tests/fixtures/generators/tf218.py).
    assert built.verdict.result["keras"] == "3.8.0" and built.verdict.result["signatures"][0]["outputs"][0]["shape"] == [1, 1]


def test_a_weights_only_file_loads_into_the_model_its_builder_returns(base_image_311, docker_engine, tmp_path):
    """tf215-weights.h5 (model.save_weights) with --model-builder, through the CLI as a user runs it: a
    builder whose model does not fit is diagnosed (exit 26); the right one loads, and the image serves
    what the same model saved whole (tf215-full.h5) computes."""
    weights, code = MODELS / "tf215-weights.h5", USERCODE / "smenv_fixture_builders.py"
    tag = "smenv-test/weights-builder:1"

    def cli(builder: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "smenv", "build", str(weights), "--code", str(code),
                               "--model-builder", builder, "--tag", tag, "--json"],
                              capture_output=True, text=True, timeout=1800, cwd=tmp_path)

    try:
        wrong = cli("smenv_fixture_builders:too_wide")
        assert wrong.returncode == 26, wrong.stderr[-2000:]
        diagnosis = json.loads(wrong.stdout)["verification"]["diagnosis"]
        assert diagnosis["kind"] == "weights_mismatch" and "smenv_fixture_builders:too_wide" in diagnosis["fix"]
        assert "hidden" in diagnosis["summary"]  # the layer whose weights do not fit

        right = cli("smenv_fixture_builders:tiny_functional")
        assert right.returncode == 0, right.stderr[-2000:]
        data = json.loads(right.stdout)
        assert data["verification"]["serve"]["ok"], data["verification"]
        labels = docker_engine.image_info(tag).labels
        assert labels["org.smenv.model.builder"] == "smenv_fixture_builders:tiny_functional"

        expected = json.loads((MODELS / "EXPECTED.json").read_text())["tf215-full.h5"]["example_call"]
        served = served_predictions(docker_engine, tag, expected["input"])
        assert served == pytest.approx([value for row in expected["output"] for value in row], rel=1e-5)
    finally:
        if docker_engine.image_info(tag) is not None:
            docker_engine.remove_image(tag, force=True)


def test_keras3_weights_saved_by_keras_3_load_through_keras_3(base_image_311, docker_engine, tmp_path):
    """A Keras 3 `.weights.h5`, written by Keras 3 itself in a container of a Keras 3 image, records no
    version: with --tf-version it is planned on Keras 3 (no tf-keras), loads into the builder's model and
    answers what the model that saved it computed."""
    from smenv.model.builder import ModelBuilder

    keras3 = build(MODELS / "tf218-keras3.keras", tmp_path / "k3", engine=docker_engine, python="3.11")
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)  # the image runs as user 10001
    save = (
        "import json, numpy as np, smenv_fixture_builders_k3 as b\n"
        "m = b.tiny_functional()\n"
        "for i, w in enumerate(m.weights):\n"
        "    n = int(np.prod(w.shape))\n"
        "    w.assign((np.linspace(-1, 1, n, dtype='float32') * (i + 1)).reshape(tuple(w.shape)))\n"
        "m.save_weights('/out/tiny.weights.h5')\n"
        "print(json.dumps(m.predict(np.array([[1, 2, 3, 4], [0.5, -1, 0, 2]], 'float32'), verbose=0).tolist()))\n"
    )
    saved = subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{out}:/out", "-v", f"{USERCODE}:/code:ro",
                            "-e", "PYTHONPATH=/code", keras3.image, "python", "-c", save],
                           capture_output=True, text=True, timeout=600)
    assert saved.returncode == 0, saved.stderr[-2000:]
    expected = json.loads(saved.stdout.strip().splitlines()[-1])
    weights = out / "tiny.weights.h5"

    built = build(weights, tmp_path / "w", engine=docker_engine, tf_version="2.19.1", tag="smenv-test/k3-weights:1",
                  model_builder=ModelBuilder("smenv_fixture_builders_k3", "tiny_functional"),
                  code=(USERCODE / "smenv_fixture_builders_k3.py",))
    try:
        plan = built.generated.plan
        assert built.generated.facts.weights_layout == "keras3-weights"
        assert (plan.keras_major, plan.legacy_keras) == (3, False) and "tf-keras" not in built.generated.lock.packages
        verdict = built.verdict.to_json()
        assert built.exit_code == 0 and verdict["load"]["ok"] and verdict["serve"]["ok"], verdict
        served = served_predictions(docker_engine, built.image, [[1, 2, 3, 4], [0.5, -1, 0, 2]])
        assert served == pytest.approx([v for row in expected for v in row], rel=1e-5)
    finally:
        docker_engine.remove_image(built.image, force=True)


def test_custom_layer_is_diagnosed_without_code_and_loads_with_it(base_image_311, docker_engine, tmp_path):
    model = MODELS / "tf215-custom-layer.keras"
    without = build(model, tmp_path / "a", engine=docker_engine)
    assert not without.verdict.ok
    diagnosis = without.verdict.diagnosis
    assert diagnosis.kind == "unknown_object" and without.exit_code == 21
    assert "ScaleShift" in diagnosis.summary and "smenv_fixture_layers" in diagnosis.fix and "--code" in diagnosis.fix
    with_code = build(model, tmp_path / "b", engine=docker_engine, code=(USERCODE / "smenv_fixture_layers.py",))
    assert with_code.verdict.ok, with_code.verdict.to_json()


def test_tf_text_op_is_diagnosed_without_the_package_and_loads_with_it(tf215, docker_engine, tmp_path):
    text_model = MODELS / "tf215-text-savedmodel"
    # The plain TF 2.15 image lacks tensorflow-text: verifying the text model against it must say so.
    verdict = verify_image(docker_engine, tf215.image, Sandbox(), model=text_model)
    assert not verdict.ok and verdict.diagnosis.kind == "op_not_registered"
    assert verdict.diagnosis.fix_packages == ("tensorflow-text==2.15.*",)
    built = build(text_model, tmp_path, engine=docker_engine)
    assert built.verdict.ok, built.verdict.to_json()
    assert "tensorflow-text" in built.generated.lock.packages


def test_corpus_model_builds_and_answers(base_image_311, docker_engine, tmp_path):
    built = build(CORPUS / "tfserving-half-plus-two-tf2-cpu", tmp_path, engine=docker_engine)
    assert built.verdict.ok
    assert built.verdict.result["tensorflow"] == "2.14.0"
    assert built.verdict.result["signatures"][0]["outputs"] == [{"name": "y", "dtype": "float32", "shape": [1]}]


def test_cli_build_json_and_exit_code(base_image_311, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "smenv", "build", str(MODELS / "tf215-keras2.keras"), "--json", "--tag", "smenv-test/cli:1"],
        capture_output=True, text=True, timeout=1800, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert data["ok"] and data["image"] == "smenv-test/cli:1"
    assert data["verification"]["result"]["tensorflow"] == "2.15.1"
    assert data["base_image"] == {"image": "python:3.11-slim-bookworm", "obtained": "on the engine"}
    assert Path(data["build_log"]).is_file()


def test_nothing_is_left_running(docker_engine):
    leftovers = docker_engine.client.containers.list(all=True, filters={"label": THROWAWAY_LABEL})
    assert leftovers == []
