"""The OpenAPI 3.0 description of the served API, built from the model's own signatures.

Paths name the served model (`/v1/models/<name>:predict`, not a template), and the request schemas
describe the default signature's inputs (names, dtypes, fixed dimensions), so a client generator or a
fuzzer (schemathesis, in tests/test_serve_fuzz.py) sees what the server accepts. What JSON Schema
cannot say (lists of equal length in every row, dimensions that must agree between inputs) the server
checks and refuses with 400.

Python 3.5 syntax (see the package docstring).
"""

from . import SERVER_NAME, SERVER_VERSION, codec
from .adapter import CLASSIFY, REGRESS

ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes):
    text = {400: "a bad request: the message says what is wrong", 404: "no such model, version or endpoint",
            405: "another method is expected", 413: "the body is larger than the limit",
            503: "the model is not ready, the server is busy or draining, or the call took too long",
            500: "the model failed on an input it accepted"}
    return dict((str(c), {"description": text[c], "content": {"application/json": {"schema": ERROR}}}) for c in codes)


def _ok(schema, description="OK"):
    return {"200": {"description": description, "content": {"application/json": {"schema": schema}}}}


def _leaf(dtype):
    kind = codec.kind_of(dtype)
    if kind == "bool":
        return {"type": "boolean"}
    if kind == "int":
        import numpy as np

        info = np.iinfo(codec.numpy_dtype(dtype))
        return {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}
    if kind == "string":
        return {"oneOf": [{"type": "string"}, {"$ref": "#/components/schemas/B64"}]}
    return {"type": "number"}


def _tensor(dtype, shape):
    """Nested arrays for a shape (a list with None for free dimensions); any value for an unknown rank."""
    if shape is None:
        return {}
    schema = _leaf(dtype)
    for d in reversed(shape):
        schema = {"type": "array", "items": schema}
        if d is not None:
            schema["minItems"] = schema["maxItems"] = d
        else:
            schema["minItems"] = 1
    return schema


def _row_schema(sig):
    if len(sig.inputs) == 1:
        spec = sig.inputs[0]
        return _tensor(spec.dtype, None if spec.shape is None else spec.shape[1:])
    return {"type": "object", "additionalProperties": False, "required": [s.name for s in sig.inputs],
            "properties": dict((s.name, _tensor(s.dtype, None if s.shape is None else s.shape[1:])) for s in sig.inputs)}


def _columns_schema(sig):
    named = {"type": "object", "additionalProperties": False, "required": [s.name for s in sig.inputs],
             "properties": dict((s.name, _tensor(s.dtype, s.shape)) for s in sig.inputs)}
    if len(sig.inputs) == 1:
        return {"oneOf": [named, _tensor(sig.inputs[0].dtype, sig.inputs[0].shape)]} if sig.inputs[0].shape else named
    return named


def _example_value(dtype, shape):
    kind = codec.kind_of(dtype)
    leaf = False if kind == "bool" else 0 if kind == "int" else "" if kind == "string" else 0.0
    if shape is None:
        return [leaf]
    value = leaf
    for d in reversed(shape):
        value = [value] * (1 if d is None else d)
    return value


def document(service):
    config = service.config
    name = config.model_name
    sigs = service.signatures
    default = sigs.get(service.default) if service.default else None
    signature_names = sorted(sigs)
    paths = {}

    paths["/v1/models/%s" % name] = {"get": {
        "summary": "Model status (TensorFlow Serving)", "operationId": "v1_status",
        "responses": dict(_ok({"$ref": "#/components/schemas/ModelStatus"}), **_errors(404))}}
    paths["/v1/models/%s/metadata" % name] = {"get": {
        "summary": "Model metadata: the signatures (TensorFlow Serving)", "operationId": "v1_metadata",
        "responses": dict(_ok({"type": "object", "required": ["model_spec", "metadata"]}), **_errors(404, 503))}}

    predict = {"type": "object", "properties": {
        "signature_name": {"type": "string", "nullable": True, "enum": signature_names + ["", None]} if signature_names else {"type": "string", "nullable": True},
        "instances": {"type": "array", "minItems": 1, "items": _row_schema(default) if default else {}},
        "inputs": _columns_schema(default) if default else {},
    }}
    request = {"required": True, "content": {"application/json": {"schema": predict}}}
    if default is not None and default.inputs:
        request["content"]["application/json"]["example"] = {
            "signature_name": default.name,
            "instances": [_example_value(s.dtype, None if s.shape is None else s.shape[1:]) for s in default.inputs][:1]
            if len(default.inputs) == 1 else
            [dict((s.name, _example_value(s.dtype, None if s.shape is None else s.shape[1:])) for s in default.inputs)],
        }
    paths["/v1/models/%s:predict" % name] = {"post": {
        "summary": "Predict, in row ('instances') or columnar ('inputs') form (TensorFlow Serving)",
        "operationId": "v1_predict", "requestBody": request,
        "responses": dict(_ok({"type": "object", "properties": {"predictions": {"type": "array"}, "outputs": {}}}),
                          **_errors(400, 404, 413, 500, 503))}}
    for method, verb in ((CLASSIFY, "classify"), (REGRESS, "regress")):
        names = sorted(n for n, s in sigs.items() if s.method == method)
        if not names:
            continue
        schema = {"type": "object", "required": ["examples"], "properties": {
            "signature_name": {"type": "string", "nullable": True, "enum": names + ["", None]},
            "context": {"allOf": [{"$ref": "#/components/schemas/Features"}], "nullable": True},
            "examples": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Features"}}}}
        if service.default not in names:
            schema["required"] = ["signature_name", "examples"]
        paths["/v1/models/%s:%s" % (name, verb)] = {"post": {
            "summary": "%s tf.Example features (TensorFlow Serving)" % verb.capitalize(), "operationId": "v1_" + verb,
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "responses": dict(_ok({"type": "object", "required": ["result"], "properties": {"result": {"type": "array"}}}),
                              **_errors(400, 404, 413, 500, 503))}}

    paths["/v2"] = {"get": {"summary": "Server metadata (Open Inference Protocol)", "operationId": "v2_server",
                            "responses": _ok({"type": "object", "required": ["name", "version", "extensions"]})}}
    paths["/v2/health/live"] = {"get": {"summary": "Liveness (Open Inference Protocol)", "operationId": "v2_live",
                                        "responses": _ok({"type": "object", "properties": {"live": {"type": "boolean"}}})}}
    paths["/v2/health/ready"] = {"get": {"summary": "Readiness: loaded, warmed up, not draining", "operationId": "v2_ready",
                                         "responses": dict(_ok({"type": "object", "properties": {"ready": {"type": "boolean"}}}),
                                                           **{"503": {"description": "not ready",
                                                                      "content": {"application/json": {"schema": {"type": "object"}}}}})}}
    paths["/v2/models/%s" % name] = {"get": {
        "summary": "Model metadata (Open Inference Protocol)", "operationId": "v2_model_metadata",
        "responses": dict(_ok({"$ref": "#/components/schemas/ModelMetadata"}), **_errors(404, 503))}}
    paths["/v2/models/%s/ready" % name] = {"get": {
        "summary": "Model readiness (Open Inference Protocol)", "operationId": "v2_model_ready",
        "responses": dict(_ok({"type": "object"}), **{"503": {"description": "not ready",
                                                               "content": {"application/json": {"schema": {"type": "object"}}}}})}}
    infer_inputs = {"type": "object", "required": ["name", "shape", "datatype", "data"], "properties": {
        "name": {"type": "string", "enum": [s.name for s in default.inputs]} if default and default.inputs else {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": sorted(set(codec.OIP_NUMPY))},
        "parameters": {"type": "object", "nullable": True},
        "data": {"type": "array"}}}
    infer = {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string", "nullable": True},
        "parameters": {"type": "object", "nullable": True, "properties": {
            "signature_name": {"type": "string", "nullable": True}, "binary_data_output": {"type": "boolean", "nullable": True}}},
        "inputs": {"type": "array", "minItems": 1, "items": infer_inputs},
        "outputs": {"type": "array", "nullable": True, "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "parameters": {"type": "object", "nullable": True, "properties": {
                "binary_data": {"type": "boolean", "nullable": True}}}}}}}}
    infer_request = {"required": True, "content": {"application/json": {"schema": infer}}}
    if default is not None and default.inputs:
        tensors = []
        for s in default.inputs:
            shape = [1 if d is None else d for d in (s.shape if s.shape is not None else [1])]
            count = 1
            for d in shape:
                count *= d
            leaf = _example_value(s.dtype, [])
            tensors.append({"name": s.name, "shape": shape, "datatype": codec.oip_datatype(s.dtype), "data": [leaf] * count})
        infer_request["content"]["application/json"]["example"] = {"inputs": tensors}
    infer_ok = {"type": "object", "required": ["model_name", "outputs"], "properties": {
            "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
            "outputs": {"type": "array", "items": {"type": "object", "required": ["name", "shape", "datatype"]}}}}
    infer_responses = dict(_ok(infer_ok), **_errors(400, 404, 413, 500, 503))
    infer_responses["200"]["content"]["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
    infer_responses["200"]["description"] = ("the answer; with binary outputs asked for (binary tensor data extension), the "
                                             "JSON answer is followed by the tensors' bytes, its length in the "
                                             "Inference-Header-Content-Length header")
    paths["/v2/models/%s/infer" % name] = {"post": {
        "summary": "Inference (Open Inference Protocol)", "operationId": "v2_infer", "requestBody": infer_request,
        "responses": infer_responses}}
    paths["/metrics"] = {"get": {"summary": "Prometheus metrics", "operationId": "metrics", "responses": {
        "200": {"description": "text exposition format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}}}}}
    paths["/openapi.json"] = {"get": {"summary": "This document", "operationId": "openapi", "responses": _ok({"type": "object"})}}

    return {
        "openapi": "3.0.3",
        "info": {"title": "%s served by %s" % (name, SERVER_NAME), "version": SERVER_VERSION,
                 "description": "TensorFlow Serving's REST API and the Open Inference Protocol v2 for one model. "
                                "Every error is a JSON object {\"error\": message}."},
        "paths": paths,
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "B64": {"type": "object", "required": ["b64"], "additionalProperties": False,
                    "properties": {"b64": {"type": "string", "format": "byte"}}},
            "Features": {"type": "object", "additionalProperties": {"oneOf": [
                {"type": "string"}, {"type": "number"}, {"$ref": "#/components/schemas/B64"},
                {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "number"}, {"$ref": "#/components/schemas/B64"}]}}]}},
            "ModelStatus": {"type": "object", "required": ["model_version_status"], "properties": {
                "model_version_status": {"type": "array", "items": {"type": "object", "required": ["version", "state", "status"]}}}},
            "ModelMetadata": {"type": "object", "required": ["name", "platform", "inputs", "outputs"], "properties": {
                "name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/TensorMetadata"}},
                "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/TensorMetadata"}}}},
            "TensorMetadata": {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
                "name": {"type": "string"}, "datatype": {"type": "string"},
                "shape": {"type": "array", "items": {"type": "integer"}}}},
        }},
    }
