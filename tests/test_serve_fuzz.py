"""Hostile input: the served API fuzzed from its own OpenAPI document with schemathesis, for a bounded time.

No 5xx, no crash, no hang, answers as documented (status codes, content types, response schemas),
and schema-violating requests refused. Not checked: "schema-valid data is accepted"
(positive_data_acceptance), because JSON Schema cannot say what the server rightly refuses (rows of
equal length, dimensions that must agree between inputs). Each failure the fuzzer found is kept
below as a test of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from smenv.runtime.serve.testing import FakeAdapter, ThreadedServer

NAME = "hpt"
# The work is fixed (--max-examples per operation, 18 s on a quiet machine); this wall limit only
# catches a hang. 60 s was too tight for CI on a loaded machine (a run of 2026-12-01 00:17 hit it).
FUZZ_SECONDS = 180
SEED = os.environ.get("SMENV_FUZZ_SEED", "1")  # fixed in CI; set another to look further


@pytest.fixture(scope="module")
def server():
    s = ThreadedServer(FakeAdapter, model_name=NAME, max_body=1 << 20, request_timeout=5.0)
    yield s
    assert s.stop() == 0


def _st() -> str:
    found = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    if not found:
        pytest.fail("schemathesis is not installed: pip install -e '.[test]'")
    return found


# Refusals of schema-violating requests. schemathesis's own list lacks 413: a request that violates the
# schema AND exceeds the body limit is rightly refused as too large before it is read (ST201 on a
# 1.3 MB generated body, found by a run on a loaded machine).
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]


def test_schemathesis_finds_nothing_wrong(server, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text("[checks.negative_data_rejection]\nexpected-statuses = [%s]\n" % ", ".join('"%s"' % s for s in REJECTIONS))
    cmd = [_st(), "--config-file", str(config), "run", server.url + "/openapi.json",
           "--checks", "all", "--exclude-checks", "positive_data_acceptance",
           "--max-examples", "60", "--request-timeout", "10", "--max-response-time", "5",
           "--continue-on-failure", "--seed", SEED, "--workers", "2", "--report-dir", str(tmp_path)]
    env = dict(os.environ, NO_COLOR="1", SCHEMATHESIS_TELEMETRY="false")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FUZZ_SECONDS, env=env)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    assert requests.get(server.url + "/v2/health/ready").status_code == 200  # still serving


# -- what the fuzzer found ------------------------------------------------------------------------


def infer(server, body):
    return requests.post(server.url + "/v2/models/%s/infer" % NAME, json=body, timeout=10)


X = [{"name": "x", "shape": [1], "datatype": "FP32", "data": [0.0]}]


@pytest.mark.parametrize("path, body", [
    (":predict", {"signature_name": None, "instances": [0.0]}),
    (":classify", {"signature_name": "classify_x_to_y", "context": None, "examples": [{}]}),
    (":regress", {"signature_name": "regress_x_to_y", "context": None, "examples": [{}]}),
])
def test_null_optional_fields_mean_absent_and_are_documented_so(server, path, body):
    # ST201 "schema-violating request accepted": the server takes null as absent; the schema now says nullable.
    assert requests.post(server.url + "/v1/models/%s%s" % (NAME, path), json=body).status_code == 200
    doc = requests.get(server.url + "/openapi.json").json()
    props = doc["paths"]["/v1/models/%s%s" % (NAME, path)]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    for key, value in body.items():
        if value is None:
            assert props[key]["nullable"] is True


def test_null_outputs_and_parameters_in_infer_are_absent(server):
    assert infer(server, {"inputs": X, "outputs": None, "parameters": None, "id": None}).status_code == 200


@pytest.mark.parametrize("body, words", [
    ({"inputs": X, "parameters": False}, "'parameters' must be an object"),
    ({"inputs": X, "parameters": {"binary_data_output": "yes"}}, "binary_data_output must be true or false"),
    ({"inputs": X, "outputs": [{"name": "y", "parameters": {"binary_data": 1}}]}, "binary_data must be true or false"),
    ({"inputs": [dict(X[0], parameters=[])]}, "'parameters' must be an object"),
])
def test_wrong_types_in_optional_fields_are_refused(server, body, words):
    # ST201: `parameters: false` was taken as absent (a falsy value read with `or {}`).
    r = infer(server, body)
    assert r.status_code == 400 and words in r.json()["error"]


def test_binary_answers_are_documented(server):
    # ST105 "undocumented Content-Type": binary_data_output answers application/octet-stream.
    r = infer(server, {"inputs": X, "parameters": {"binary_data_output": True}})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/octet-stream"
    size = int(r.headers["Inference-Header-Content-Length"])
    assert r.content[size:] == b"\x00\x00\x00\x40"  # 2.0 as a little-endian float32
    doc = requests.get(server.url + "/openapi.json").json()
    assert "application/octet-stream" in doc["paths"]["/v2/models/%s/infer" % NAME]["post"]["responses"]["200"]["content"]
