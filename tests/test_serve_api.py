"""The model server (smenv/runtime/serve) over real HTTP on 127.0.0.1, with the numpy stand-in model.

TensorFlow Serving's REST API with plain requests, the Open Inference Protocol v2 with
tritonclient[http] (a client that speaks it, from PyPI), errors, metrics (parsed with
prometheus_client's own parser), the OpenAPI document, batching on and off, time and queue limits.
The SIGTERM drain runs in a subprocess: tests/test_serve_process.py.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import numpy as np
import pytest
import requests

from smenv.runtime.serve import codec
from smenv.runtime.serve.runner import BatchConfig
from smenv.runtime.serve.testing import FakeAdapter, ThreadedServer, parse_example

NAME = "hpt"


@pytest.fixture(scope="module")
def adapter():
    return FakeAdapter(slow=True, fail=True)


@pytest.fixture(scope="module")
def server(adapter):
    s = ThreadedServer(lambda: adapter, model_name=NAME, request_timeout=3.0, max_body=1 << 20)
    yield s
    assert s.stop() == 0


def post(server, path, body, **kw):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(server.url + path, data=data, timeout=10, **kw)


def predict(server, body, verb="predict"):
    return post(server, "/v1/models/%s:%s" % (NAME, verb), body)


def error_of(response, status=400):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    return body["error"]


# -- TensorFlow Serving REST --------------------------------------------------------------------


def test_status_and_metadata(server):
    r = requests.get(server.url + "/v1/models/" + NAME)
    assert r.json() == {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert requests.get(server.url + "/v1/models/%s/versions/1" % NAME).status_code == 200
    meta = requests.get(server.url + "/v1/models/%s/metadata" % NAME).json()
    assert meta["model_spec"] == {"name": NAME, "signature_name": "", "version": "1"}
    defs = meta["metadata"]["signature_def"]["signature_def"]
    assert defs["serving_default"]["inputs"]["x"] == {"dtype": "DT_FLOAT", "name": "x",
                                                      "tensor_shape": {"unknown_rank": False, "dim": [{"size": "-1", "name": ""}]}}
    assert defs["classify_x_to_y"]["method_name"] == "tensorflow/serving/classify"
    assert defs["fixed"]["inputs"]["m"]["tensor_shape"]["dim"] == [{"size": "2", "name": ""}, {"size": "3", "name": ""}]


def test_predict_row_format_as_in_tf_serving_readme(server):
    r = predict(server, {"instances": [1.0, 2.0, 5.0]})
    assert r.status_code == 200 and r.json() == {"predictions": [2.5, 3.0, 4.5]}
    # one named input: instances may name it too
    assert predict(server, {"instances": [{"x": 1.0}, {"x": 2.0}]}).json() == {"predictions": [2.5, 3.0]}


def test_predict_columnar_format(server):
    assert predict(server, {"inputs": [1.0, 2.0]}).json() == {"outputs": [2.5, 3.0]}
    assert predict(server, {"inputs": {"x": [4]}}).json() == {"outputs": [4.0]}


def test_several_inputs_and_outputs_and_bytes_outputs(server):
    rows = predict(server, {"signature_name": "multi", "instances": [{"a": [1, 2], "b": 3}, {"a": [0.5, 0], "b": 1}]})
    assert rows.status_code == 200, rows.text
    b64 = lambda raw: {"b64": base64.b64encode(raw).decode()}
    assert rows.json() == {"predictions": [
        {"sum": [4.0, 5.0], "count": 4, "label_bytes": b64(b"row0\xff")},
        {"sum": [1.5, 1.0], "count": 2, "label_bytes": b64(b"row1\xff")},
    ]}
    cols = predict(server, {"signature_name": "multi", "inputs": {"a": [[1, 2]], "b": [3]}}).json()
    assert cols == {"outputs": {"sum": [[4.0, 5.0]], "count": [4], "label_bytes": [b64(b"row0\xff")]}}


def test_strings_and_b64_inputs(server):
    r = predict(server, {"signature_name": "text", "instances": ["ab", {"b64": base64.b64encode(b"hi!").decode()}]})
    assert r.json() == {"predictions": [{"length": 2, "upper": "AB"}, {"length": 3, "upper": "HI!"}]}


def test_fixed_shape_columnar_and_row_mismatch(server):
    assert predict(server, {"signature_name": "fixed", "inputs": [[1, 2, 3], [4, 5, 6]]}).json() == {"outputs": 21.0}
    assert "dimension 1 must be 3" in error_of(predict(server, {"signature_name": "fixed", "inputs": [[1, 2], [4, 5]]}))


def test_nan_and_infinity_are_accepted_and_answered(server):
    r = predict(server, '{"instances": [NaN, Infinity, -Infinity]}')
    assert r.status_code == 200
    assert r.text == '{"predictions":[NaN,Infinity,-Infinity]}'


def test_classify_and_regress(server):
    r = predict(server, {"signature_name": "classify_x_to_y", "examples": [{"x": 0.0}, {"x": 2}]}, "classify")
    result = r.json()["result"]
    assert [[label for label, _ in row] for row in result] == [["positive", "negative"]] * 2
    assert result[0][0][1] == pytest.approx(0.5)
    r = predict(server, {"signature_name": "regress_x_to_y", "context": {"x": 4.0}, "examples": [{}, {"x": 1.0}]}, "regress")
    assert r.json() == {"result": [4.0, 2.5]}
    # a predict signature is not a classify one, as TF Serving says
    assert "method_name to be tensorflow/serving/classify" in error_of(predict(server, {"examples": [{"x": 1}]}, "classify"))


def test_examples_are_real_tf_example_protos():
    raw = codec.serialize_example({"x": [1.5, 2.0], "n": [3, -1], "s": ["a", {"b64": "AAE="}]}, "test")
    assert parse_example(raw) == {"x": [1.5, 2.0], "n": [3, -1], "s": [b"a", b"\x00\x01"]}


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("body, status, words", [
    ('{"instances": [1.0', 400, "malformed JSON"),
    ("[1, 2]", 400, "must be a JSON object"),
    (b"\xff\xfe", 400, "not UTF-8"),
    ("[" * 100000 + "]" * 100000, 400, "JSON"),
    ({"instances": [1.0], "inputs": [1.0]}, 400, "exactly one of"),
    ({}, 400, "exactly one of"),
    ({"instances": []}, 400, "'instances' is empty"),
    ({"instances": 3}, 400, "must be a list"),
    ({"instances": [1.0, "a"]}, 400, "'a' is not a number"),
    ({"instances": [True]}, 400, "is not a number"),
    ({"instances": [[1.0], [2.0]]}, 400, "rank 2, the model takes [-1] (rank 1)"),
    ({"inputs": {"x": [1], "z": [2]}}, 400, "unknown input 'z'"),
    ({"inputs": {}}, 400, "missing input 'x'"),
    ({"signature_name": "nope", "instances": [1.0]}, 400, "'nope' not found"),
    ({"signature_name": 3, "instances": [1.0]}, 400, "must be a string"),
    ({"signature_name": "multi", "instances": [{"a": [1, 2], "b": 1.5}]}, 400, "1.5 is not an integer (int64)"),
    ({"signature_name": "multi", "instances": [{"a": [1, 2], "b": 1}, {"a": [1, 2]}]}, 400, "every instance must name the same inputs"),
    ({"signature_name": "multi", "instances": [1]}, 400, "each instance must be an object"),
    ({"signature_name": "multi", "inputs": {"a": [[1, 2]], "b": [1, 2]}}, 400, "must agree"),
    ({"signature_name": "multi", "inputs": {"a": [[1, 2], [3]], "b": [1, 2]}}, 400, "ragged"),
    ({"signature_name": "flags", "inputs": {"f": [[1, 0, 1]]}}, 400, "not a boolean"),
    ({"signature_name": "text", "instances": [{"b64": "!!"}]}, 400, "valid base64"),
    ({"signature_name": "text", "instances": [1]}, 400, "a string or"),
    ({"signature_name": "fail", "instances": [1.0]}, 500, "the model failed: RuntimeError"),
])
def test_bad_requests_name_what_is_wrong(server, body, status, words):
    assert words in error_of(predict(server, body), status)


def test_out_of_range_integers(server):
    body = {"signature_name": "multi", "inputs": {"a": [[1, 2]], "b": [2 ** 63]}}
    assert "in the range of int64" in error_of(predict(server, body))


def test_unknown_model_version_endpoint_and_method(server):
    assert "serves 'hpt'" in error_of(requests.get(server.url + "/v1/models/other"), 404)
    assert "version '7'" in error_of(requests.get(server.url + "/v1/models/hpt/versions/7"), 404)
    assert "labels" in error_of(requests.get(server.url + "/v1/models/hpt/labels/stable"), 404)
    assert "no such endpoint" in error_of(requests.get(server.url + "/nope"), 404)
    r = requests.get(server.url + "/v1/models/hpt:predict")
    assert "use POST" in error_of(r, 405) and r.headers["Allow"] == "POST"
    assert "no body" in error_of(requests.post(server.url + "/v1/models/hpt:predict"))


def test_oversized_bodies_are_refused_with_json(server):
    big = b'{"instances": [' + b"1," * (1 << 20) + b"1]}"
    assert "Request Entity Too Large" in error_of(requests.post(server.url + "/v1/models/hpt:predict", data=big), 413)

    def chunks():
        for _ in range(1 << 10):
            yield b"1," * 1024
    assert "Request Entity Too Large" in error_of(requests.post(server.url + "/v1/models/hpt:predict", data=chunks()), 413)
    assert predict(server, {"instances": [1.0]}).status_code == 200  # and the server keeps serving


def test_malformed_http_gets_json_too(server):
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=5) as sock:
        sock.sendall(b"POST /v1/models/hpt:predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        chunks = []
        while True:  # the server closes the connection after its refusal
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        answer = b"".join(chunks).decode("latin-1")
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 400") and "application/json" in head
    assert "error" in json.loads(body)


def test_a_slow_call_answers_503_within_the_time_limit(server):
    started = time.monotonic()
    r = predict(server, {"signature_name": "slow", "instances": [4.0]})
    assert "did not answer within 3s" in error_of(r, 503)
    assert time.monotonic() - started < 3.9


def test_the_queue_limit_answers_503():
    s = ThreadedServer(lambda: FakeAdapter(slow=True), model_name=NAME, model_threads=1, max_queue=1, threads=4)
    try:
        first = threading.Thread(target=predict, args=(s, {"signature_name": "slow", "instances": [1.0]}))
        first.start()
        time.sleep(0.3)
        assert "server is busy" in error_of(predict(s, {"instances": [1.0]}), 503)
        first.join()
        assert predict(s, {"instances": [1.0]}).status_code == 200
    finally:
        s.stop()


# -- readiness ----------------------------------------------------------------------------------


def test_ready_only_after_load_and_warm_up():
    gate = threading.Event()
    made = []

    def factory():
        gate.wait(10)
        made.append(FakeAdapter())
        return made[0]

    s = ThreadedServer(factory, load=False, model_name=NAME)
    loader = s.server.start_loading()
    try:
        assert requests.get(s.url + "/v2/health/live").json() == {"live": True}
        assert requests.get(s.url + "/v2/health/ready").status_code == 503
        assert requests.get(s.url + "/v1/models/" + NAME).json()["model_version_status"][0]["state"] == "LOADING"
        assert "loading" in error_of(predict(s, {"instances": [1.0]}), 503)
        gate.set()
        loader.join(10)
        assert requests.get(s.url + "/v2/health/ready").status_code == 200
        assert made[0].calls_of("serving_default")[0] == 1  # the warm-up call came first
    finally:
        s.stop()


class _RefusesZeros(FakeAdapter):
    """A model whose default signature refuses made-up input (as a text model refuses empty strings)."""

    def __init__(self, samples=None):
        super().__init__()
        self.samples = samples or {}

    def call(self, signature_name, inputs):
        if signature_name == "serving_default" and not (inputs["x"] != 0).any():
            raise ValueError("InvalidArgumentError: zeros are not valid input here")
        return super().call(signature_name, inputs)


@pytest.mark.parametrize("samples, ready", [(None, True), ({"x": [0.0]}, False)])
def test_made_up_input_refused_at_warm_up_still_serves_but_a_failing_sample_does_not(samples, ready):
    """Found by make corpus: a tensorflow-text model loaded, refused the warm-up's empty strings, and
    was never ready. Made-up input refused: served, with a log line; real input (a sample) refused: not."""
    s = ThreadedServer(lambda: _RefusesZeros(samples), model_name=NAME)
    try:
        assert (requests.get(s.url + "/v2/health/ready").status_code == 200) is ready
        if ready:
            assert predict(s, {"instances": [1.0]}).json() == {"predictions": [2.5]}
    finally:
        s.stop()


def test_a_model_that_fails_to_load_is_reported_and_never_ready():
    def factory():
        raise OSError("no model at /opt/smenv/model")

    s = ThreadedServer(factory, model_name=NAME)
    try:
        status = requests.get(s.url + "/v1/models/" + NAME).json()["model_version_status"][0]
        assert status["state"] == "END" and "no model at" in status["status"]["error_message"]
        assert requests.get(s.url + "/v2/health/ready").status_code == 503
        assert requests.get(s.url + "/v2/health/live").status_code == 200
        assert "failed to load: OSError" in error_of(predict(s, {"instances": [1.0]}), 503)
    finally:
        s.stop()


# -- Open Inference Protocol v2, with a real client -----------------------------------------------


@pytest.fixture(scope="module")
def triton(server):
    httpclient = pytest.importorskip("tritonclient.http")
    return httpclient, httpclient.InferenceServerClient(url=server.url.replace("http://", ""))


def test_oip_health_and_metadata_with_tritonclient(triton):
    httpclient, client = triton
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(NAME)
    assert not client.is_model_ready("other")
    meta = client.get_model_metadata(NAME)
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1]}]
    assert client.get_server_metadata()["name"] == "smenv"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_oip_infer_with_tritonclient(triton, binary):
    httpclient, client = triton
    x = np.array([1.0, 2.0, 5.0], dtype=np.float32)
    inp = httpclient.InferInput("x", [3], "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput("y", binary_data=binary)
    result = client.infer(NAME, [inp], outputs=[out], request_id="r1")
    np.testing.assert_array_equal(result.as_numpy("y"), x * 0.5 + 2)
    assert result.get_response()["id"] == "r1"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_oip_bytes_and_several_inputs_with_tritonclient(triton, binary):
    httpclient, client = triton
    text = httpclient.InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"ab", b"xyz"], dtype=object), binary_data=binary)
    result = client.infer(NAME, [text], outputs=[httpclient.InferRequestedOutput("upper", binary_data=binary)],
                          parameters={"signature_name": "text"})
    assert [v if isinstance(v, bytes) else v.encode() for v in result.as_numpy("upper")] == [b"AB", b"XYZ"]
    a = httpclient.InferInput("a", [1, 2], "FP32")
    a.set_data_from_numpy(np.array([[1, 2]], dtype=np.float32), binary_data=binary)
    b = httpclient.InferInput("b", [1], "INT64")
    b.set_data_from_numpy(np.array([3], dtype=np.int64), binary_data=binary)
    result = client.infer(NAME, [a, b], parameters={"signature_name": "multi"})
    np.testing.assert_array_equal(result.as_numpy("count"), [4])


def test_oip_errors_name_what_is_wrong(server, triton):
    httpclient, client = triton
    from tritonclient.utils import InferenceServerException

    inp = httpclient.InferInput("x", [2], "FP64")
    inp.set_data_from_numpy(np.array([1.0, 2.0]), binary_data=False)
    with pytest.raises(InferenceServerException, match="datatype 'FP64', the model takes FP32"):
        client.infer(NAME, [inp])
    url = server.url + "/v2/models/%s/infer" % NAME
    cases = [
        ({"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2]}]}, "holds 2 elements, 'shape' [3] needs 3"),
        ({"inputs": [{"name": "q", "shape": [1], "datatype": "FP32", "data": [1]}]}, "unknown input 'q'"),
        ({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1]}]}, "rank 2"),
        ({"inputs": [{"name": "x", "shape": [-1], "datatype": "FP32", "data": [1]}]}, "non-negative integers"),
        ({"inputs": []}, "non-empty list"),
        ({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}], "outputs": [{"name": "z"}]}, "unknown output 'z'"),
    ]
    for body, words in cases:
        assert words in error_of(requests.post(url, json=body))
    header = b'{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}'
    r = requests.post(url, data=header + b"\x00" * 4, headers={"Inference-Header-Content-Length": str(len(header))})
    assert "does not fit" in error_of(r)


# -- metrics and OpenAPI ------------------------------------------------------------------------


def test_metrics_in_prometheus_format(server):
    from prometheus_client.parser import text_string_to_metric_families

    predict(server, {"instances": [1.0]})
    predict(server, {"instances": ["bad"]})
    r = requests.get(server.url + "/metrics")
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert families["smenv_requests"].type == "counter"
    requests_total = {(s.labels["endpoint"], s.labels["code"]): s.value for s in families["smenv_requests"].samples}
    assert requests_total[("v1_predict", "200")] >= 1 and requests_total[("v1_predict", "400")] >= 1
    errors = {(s.labels["endpoint"], s.labels["kind"]): s.value for s in families["smenv_request_errors"].samples}
    assert errors[("v1_predict", "client")] >= 1
    latency = families["smenv_request_duration_seconds"]
    assert latency.type == "histogram"
    assert any(s.name.endswith("_bucket") and s.labels["le"] == "+Inf" and s.labels["endpoint"] == "v1_predict" for s in latency.samples)
    assert families["smenv_model_ready"].samples[0].value == 1
    assert "smenv_model_call_duration_seconds" in families


def test_openapi_document_is_valid_and_describes_the_model(server):
    from openapi_spec_validator import validate

    doc = requests.get(server.url + "/openapi.json").json()
    validate(doc)
    assert "/v1/models/hpt:predict" in doc["paths"] and "/v1/models/hpt:classify" in doc["paths"]
    assert "/v2/models/hpt/infer" in doc["paths"] and "/metrics" in doc["paths"]
    example = doc["paths"]["/v1/models/hpt:predict"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert predict(server, example).status_code == 200
    example = doc["paths"]["/v2/models/hpt/infer"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert requests.post(server.url + "/v2/models/hpt/infer", json=example).status_code == 200


def test_an_empty_signature_name_means_the_default_and_the_spec_says_so(server):
    """Found by schemathesis (ST201): TF Serving takes "" for the default signature, and so does the
    server, but the OpenAPI document's enum left "" out."""
    assert predict(server, {"signature_name": "", "instances": [1.0]}).json() == {"predictions": [2.5]}
    doc = requests.get(server.url + "/openapi.json").json()
    for verb in ("predict", "classify"):
        schema = doc["paths"][f"/v1/models/hpt:{verb}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert "" in schema["properties"]["signature_name"]["enum"], verb


def test_a_declared_shape_too_large_is_a_bad_request_not_a_large_body(server):
    """Found by schemathesis (ST201): a small body whose 'shape' claims billions of elements got 413."""
    body = {"inputs": [{"name": "x", "shape": [2 ** 20, 2 ** 20], "datatype": "FP32", "data": [1.0]}]}
    assert "more than" in error_of(requests.post(server.url + "/v2/models/hpt/infer", json=body), 400)


# -- batching -----------------------------------------------------------------------------------


def _concurrent_predictions(s, n):
    results = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait()
        results[i] = predict(s, {"instances": [float(i)]}).json()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    return results


def test_batching_off_calls_the_model_once_per_request():
    adapter = FakeAdapter()
    s = ThreadedServer(lambda: adapter, model_name=NAME, threads=16)
    try:
        results = _concurrent_predictions(s, 12)
        assert results == [{"predictions": [i * 0.5 + 2]} for i in range(12)]
        assert set(adapter.calls_of("serving_default")) == {1}
    finally:
        s.stop()


def test_batching_on_merges_concurrent_requests_and_answers_each_its_own_rows():
    adapter = FakeAdapter()
    s = ThreadedServer(lambda: adapter, model_name=NAME, threads=16, batching=BatchConfig(max_batch_size=8, batch_timeout=0.05))
    try:
        results = _concurrent_predictions(s, 12)
        assert results == [{"predictions": [i * 0.5 + 2]} for i in range(12)]
        sizes = adapter.calls_of("serving_default")[1:]  # after the warm-up call
        assert max(sizes) > 1 and max(sizes) <= 8 and sum(sizes) == 12
        # a request the batch cannot take (another trailing shape) is answered on its own
        assert predict(s, {"signature_name": "multi", "instances": [{"a": [1, 2], "b": 1}]}).status_code == 200
    finally:
        s.stop()


def test_time_to_ready_is_logged_by_stage_as_the_bench_reads_it(capsys):
    """The server's "ready" line says TensorFlow's import, the load and the warm-up apart; `make bench`
    reads them from it (bench/serving.py), and /metrics has the same three stages."""
    import sys
    from pathlib import Path

    from smenv.runtime.serve.app import Config, Service

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from serving import parse_ready_breakdown

    class Slow(FakeAdapter):
        tensorflow_version = "2.15.1"

        def __init__(self):
            self.import_seconds = 0.25  # as the real adapter measures `import tensorflow`
            super().__init__(load_seconds=0.3)

    service = Service(Config(model_name=NAME, request_timeout=3.0, max_body=1 << 20))
    service.load(Slow)
    assert service.ready
    figures = parse_ready_breakdown(capsys.readouterr().err)
    assert figures["import_seconds"] == 0.25
    assert 0.0 <= figures["load_seconds"] < 0.3  # the factory's time less the import: 0.3 s of sleep less 0.25
    assert figures["warmup_seconds"] is not None
    stages = {labels[0] for labels in service.metrics.load_seconds.values}
    assert stages == {"import", "load", "warmup"}


def test_a_backlog_of_requests_does_not_flood_the_log(capfd, caplog):
    """waitress warns once per request that waits for a thread; under load that was thousands of lines a
    second on the container's stderr. The backlog is normal and /metrics shows it: nothing is logged."""
    from concurrent.futures import ThreadPoolExecutor

    adapter = FakeAdapter(slow=True)
    s = ThreadedServer(lambda: adapter, model_name=NAME, request_timeout=5.0, max_body=1 << 20, threads=1)
    try:
        body = {"signature_name": "slow", "instances": [0.05]}
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: requests.post(f"{s.url}/v1/models/{NAME}:predict", json=body, timeout=30),
                                    range(8)))
        assert [a.status_code for a in answers] == [200] * 8
    finally:
        assert s.stop() == 0
    # Outside pytest the warning went to stderr (logging's last resort); here pytest's handler takes it.
    assert "Task queue depth" not in capfd.readouterr().err + caplog.text
