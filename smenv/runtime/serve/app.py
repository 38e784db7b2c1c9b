"""The WSGI application: TensorFlow Serving's REST API, the Open Inference Protocol v2, /metrics, /openapi.json.

Every refusal is an HTTP error status with a JSON body {"error": "<what is wrong>"} (TF Serving's
shape, which the Open Inference Protocol uses too). The model is reached only through
`Service.runner` (smenv/runtime/serve/runner.py), after codec.py has checked the request against
the signature, so a bad request never reaches the model.

Python 3.5 syntax (see the package docstring).
"""

import json
import re
import sys
import threading
import time
import traceback
from concurrent.futures import TimeoutError as FutureTimeout

from . import SERVER_NAME, SERVER_VERSION, codec, openapi
from .adapter import CLASSIFY, FULL_METHOD_NAMES, REGRESS, ModelInputError, default_signature_name
from .codec import BadRequest
from .metrics import ServerMetrics
from .runner import Overloaded, Runner

LOADING, AVAILABLE, FAILED = "LOADING", "AVAILABLE", "END"
JSON_TYPE = "application/json"

V1 = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
                r"(?P<rest>/metadata|:predict|:classify|:regress)?$")
V2 = re.compile(r"^/v2/models/(?P<name>[^/]+?)(?:/versions/(?P<version>[^/]+?))?(?P<rest>/ready|/infer)?$")


def log(message):
    sys.stderr.write("smenv-serve: %s\n" % message)
    sys.stderr.flush()


class Config(object):
    """What the server is told (smenv/runtime/serve/__main__.py reads it from flags and the environment)."""

    def __init__(self, model_name="model", host="0.0.0.0", port=8501, threads=8, model_threads=4, max_queue=64,
                 request_timeout=60.0, max_body=64 * 1024 * 1024, batching=None, drain_seconds=8.0,
                 channel_timeout=30.0, connection_limit=256, version="1"):
        self.model_name = model_name
        self.host = host
        self.port = port
        self.threads = threads
        self.model_threads = model_threads
        self.max_queue = max_queue
        self.request_timeout = request_timeout
        self.max_body = max_body
        self.batching = batching
        self.drain_seconds = drain_seconds
        self.channel_timeout = channel_timeout
        self.connection_limit = connection_limit
        self.version = version


class Service(object):
    """The model's state (loading, available, failed), its runner, and whether the server is draining."""

    def __init__(self, config, metrics=None):
        self.config = config
        self.metrics = metrics or ServerMetrics()
        self.state = LOADING
        self.error = ""
        self.adapter = None
        self.signatures = {}
        self.default = None
        self.runner = None
        self.draining = False
        self.platform = "unknown"
        self.inflight = 0
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)

    @property
    def ready(self):
        return self.state == AVAILABLE and not self.draining

    def load(self, factory):
        """Load (factory() -> Adapter), then warm up: only then is the model AVAILABLE. Never raises."""
        try:
            started = time.perf_counter()
            adapter = factory()
            loaded = time.perf_counter()
            imported = getattr(adapter, "import_seconds", 0.0)  # TensorFlow's import, inside the factory's time
            self.metrics.load_seconds.set(round(imported, 3), "import")
            self.metrics.load_seconds.set(round(loaded - started - imported, 3), "load")
            signatures = adapter.signatures()
            if not signatures:
                raise ValueError("the model has no signature to serve")
            runner = Runner(adapter, signatures, self.config.model_threads, self.config.max_queue, self.config.batching, self.metrics)
            default = default_signature_name(signatures)
            self._warm_up(adapter, runner, signatures, default)
            self.metrics.load_seconds.set(round(time.perf_counter() - loaded, 3), "warmup")
            self.adapter, self.signatures, self.default, self.runner = adapter, signatures, default, runner
            self.platform = getattr(adapter, "platform", "unknown")
            self.state = AVAILABLE
            self.metrics.ready.set(1)
            log("model %r ready: %d signature(s), default %r, TensorFlow %s imported in %.2fs, loaded in %.2fs, "
                "warmed up in %.2fs" % (self.config.model_name, len(signatures), default,
                                        getattr(adapter, "tensorflow_version", "?"), imported,
                                        loaded - started - imported, time.perf_counter() - loaded))
        except Exception as exc:
            self.error = "%s: %s" % (type(exc).__name__, str(exc).strip() or "(no message)")
            self.state = FAILED
            log("the model did not load: %s\n%s" % (self.error, traceback.format_exc()))

    @staticmethod
    def _warm_up(adapter, runner, signatures, default):
        """One call per signature; the default signature must answer one of its candidate inputs."""
        for name in [default] + sorted(n for n in signatures if n != default):
            errors = []
            for inputs in adapter.warmup_inputs(signatures[name]):
                try:
                    runner.call(name, inputs, 1)
                    break
                except Exception as exc:
                    errors.append("%s: %s" % (type(exc).__name__, str(exc).splitlines()[0] if str(exc) else ""))
            else:
                # Made-up input can be refused by a model that serves real input well (strings a tokenizer
                # parses, ids an Embedding bounds): the model is loaded, so it is served, and the log says
                # how to warm it up for real. Real input (a sample) that fails is a failed warm-up.
                if name == default and getattr(adapter, "samples", None):
                    raise RuntimeError("the warm-up call of signature %r failed: %s" % (name, "; ".join(errors[-3:])))
                log("signature %r was not warmed up: made-up input was refused (%s); set SMENV_SAMPLE_INPUT to an "
                    ".npz of real input to warm it up" % (name, errors[-1] if errors else "no input"))

    def enter(self):
        with self.lock:
            self.inflight += 1

    def leave(self):
        with self.lock:
            self.inflight -= 1
            if self.inflight == 0:
                self.idle.notify_all()


class Response(object):
    def __init__(self, status, body, content_type=JSON_TYPE, headers=()):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = list(headers)


STATUS_TEXT = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
               411: "Length Required", 413: "Payload Too Large", 415: "Unsupported Media Type",
               500: "Internal Server Error", 503: "Service Unavailable"}


def json_response(status, obj, headers=()):
    return Response(status, json.dumps(obj, separators=(",", ":")).encode("utf-8"), JSON_TYPE, headers)


def error_response(status, message, headers=()):
    return json_response(status, {"error": message}, headers)


class Application(object):
    """A WSGI callable serving `service`."""

    def __init__(self, service):
        self.service = service
        self.metrics = service.metrics

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        service = self.service
        service.enter()
        self.metrics.inflight.add(1)
        endpoint = endpoint_of(environ.get("PATH_INFO") or "/")
        try:
            try:
                _, response = self.route(environ)
            except BadRequest as exc:
                response = error_response(exc.status, str(exc))
            except Exception as exc:  # a bug here must not take the server down: 500, and the traceback logged
                log("internal error on %s %s: %s\n%s" % (environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), exc, traceback.format_exc()))
                response = error_response(500, "internal server error: %s" % type(exc).__name__)
            headers = [("Content-Type", response.content_type), ("Content-Length", str(len(response.body)))] + response.headers
            start_response("%d %s" % (response.status, STATUS_TEXT.get(response.status, "")), headers)
            self._count(endpoint, response.status, time.perf_counter() - started)
            body = response.body if environ.get("REQUEST_METHOD") != "HEAD" else b""
            return [body]
        finally:
            self.metrics.inflight.add(-1)
            service.leave()

    def _count(self, endpoint, status, seconds):
        m = self.metrics
        m.requests.inc(endpoint, str(status))
        m.latency.observe(seconds, endpoint)
        if status >= 400:
            kind = "client" if status < 500 else "timeout" if status == 504 else "overload" if status == 503 else "server"
            m.errors.inc(endpoint, kind)

    # -- routing --------------------------------------------------------------------------------

    def route(self, environ):
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "HEAD":
            method = "GET"
        m = V1.match(path)
        if m:
            rest = m.group("rest") or ""
            endpoint = "v1_" + (rest.strip("/:") or "status")
            allowed = "POST" if rest.startswith(":") else "GET"
            if method != allowed:
                return endpoint, _not_allowed(allowed)
            self._check_model(m.group("name"), m.group("version"), m.group("label"))
            if rest == "":
                return endpoint, self.v1_status()
            if rest == "/metadata":
                return endpoint, self.v1_metadata()
            return endpoint, self.v1_call(rest[1:], self._json_body(environ))
        m = V2.match(path)
        if m:
            rest = m.group("rest") or ""
            endpoint = "v2_model_" + (rest.strip("/") or "metadata")
            allowed = "POST" if rest == "/infer" else "GET"
            if method != allowed:
                return endpoint, _not_allowed(allowed)
            self._check_model(m.group("name"), m.group("version"), None)
            if rest == "/ready":
                return endpoint, self.v2_model_ready()
            if rest == "/infer":
                return endpoint, self.v2_infer(environ)
            return endpoint, self.v2_model_metadata()
        simple = {
            "/v2/health/live": ("v2_live", self.v2_live),
            "/v2/health/ready": ("v2_ready", self.v2_ready),
            "/v2": ("v2_server", self.v2_server),
            "/metrics": ("metrics", self.prometheus),
            "/openapi.json": ("openapi", self.openapi),
        }
        if path in simple:
            endpoint, handler = simple[path]
            if method != "GET":
                return endpoint, _not_allowed("GET")
            return endpoint, handler()
        raise BadRequest("no such endpoint: %s %s (see /openapi.json)" % (method, _clip(path)), 404)

    def _check_model(self, name, version, label):
        config = self.service.config
        if name != config.model_name:
            raise BadRequest("Servable not found for request: model %r (this server serves %r)" % (_clip(name), config.model_name), 404)
        if label is not None:
            raise BadRequest("Servable not found for request: version label %r (this server has no labels)" % _clip(label), 404)
        if version is not None and version != config.version:
            raise BadRequest("Servable not found for request: version %r of model %r (it has version %s)"
                             % (_clip(version), name, config.version), 404)

    def _need_model(self):
        service = self.service
        if service.state == AVAILABLE:
            return
        if service.state == FAILED:
            raise BadRequest("the model failed to load: %s" % service.error, 503)
        raise BadRequest("the model is not ready yet: it is loading", 503)

    def _json_body(self, environ, data=None):
        if data is None:
            data = self._read_body(environ)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest("the body is not UTF-8 text: %s" % exc)
        try:
            body = json.loads(text)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise BadRequest("malformed JSON: %s" % exc)
        except RecursionError:
            raise BadRequest("malformed JSON: nested too deeply")
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object, not %s" % type(body).__name__.replace("NoneType", "null"))
        return body

    def _read_body(self, environ):
        limit = self.service.config.max_body
        raw = environ.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            raise BadRequest("Content-Length %r is not a number" % _clip(raw))
        if length > limit:
            raise BadRequest("the body has %d bytes, more than the limit of %d (SMENV_MAX_REQUEST_BYTES)" % (length, limit), 413)
        if length <= 0:
            raise BadRequest("the request has no body: send a JSON object")
        data = environ["wsgi.input"].read(length)
        if len(data) < length:
            raise BadRequest("the body ended after %d of %d bytes" % (len(data), length))
        return data

    # -- TensorFlow Serving ---------------------------------------------------------------------

    def v1_status(self):
        service = self.service
        if service.state == FAILED:
            status = {"error_code": "UNKNOWN", "error_message": service.error}
        else:
            status = {"error_code": "OK", "error_message": ""}
        return json_response(200, {"model_version_status": [{"version": service.config.version, "state": service.state, "status": status}]})

    def v1_metadata(self):
        self._need_model()
        service = self.service
        defs = dict((name, codec.tfs_signature_def(sig)) for name, sig in service.signatures.items())
        return json_response(200, {
            "model_spec": {"name": service.config.model_name, "signature_name": "", "version": service.config.version},
            "metadata": {"signature_def": {"signature_def": defs}},
        })

    def _signature(self, body, field="signature_name"):
        service = self.service
        name = body.get(field)
        if name is None or name == "":
            name = service.default
        if not isinstance(name, str):
            raise BadRequest("'%s' must be a string" % field)
        sig = service.signatures.get(name)
        if sig is None:
            raise BadRequest("Serving signature name: %r not found in signature def; the model has %s"
                             % (_clip(name), ", ".join(repr(n) for n in sorted(service.signatures))))
        return sig

    def v1_call(self, verb, body):
        self._need_model()
        sig = self._signature(body)
        if verb == "predict":
            has_rows, has_columns = "instances" in body, "inputs" in body
            if has_rows == has_columns:
                raise BadRequest("send exactly one of 'instances' (row format) and 'inputs' (columnar format)")
            if has_rows:
                inputs = codec.tfs_row_inputs(body["instances"], sig)
                outputs = self._call(sig, inputs)
                return json_response(200, {"predictions": codec.tfs_row_outputs(outputs, len(body["instances"]))})
            inputs = codec.tfs_columnar_inputs(body["inputs"], sig)
            return json_response(200, {"outputs": codec.tfs_columnar_outputs(self._call(sig, inputs))})
        wanted = CLASSIFY if verb == "classify" else REGRESS
        if sig.method != wanted:
            raise BadRequest("Expected %s signature method_name to be %s. Was: %s (signature %r)"
                             % (verb, FULL_METHOD_NAMES[wanted], FULL_METHOD_NAMES[sig.method], sig.name))
        inputs = codec.examples_input(body, sig)
        rows = len(body["examples"])
        outputs = self._call(sig, inputs)
        result = codec.classify_result(outputs, rows) if wanted == CLASSIFY else codec.regress_result(outputs, rows)
        return json_response(200, {"result": result})

    def _call(self, sig, inputs):
        timeout = self.service.config.request_timeout
        try:
            future = self.service.runner.submit(sig.name, inputs)
        except Overloaded as exc:
            raise BadRequest("the server is busy: %s; retry later" % exc, 503)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            raise BadRequest("the model did not answer within %gs (SMENV_REQUEST_TIMEOUT)" % timeout, 503)
        except ModelInputError as exc:
            raise BadRequest("the model refused the input: %s" % exc)
        except BadRequest:
            raise
        except Exception as exc:
            log("signature %r failed: %s\n%s" % (sig.name, exc, traceback.format_exc()))
            raise BadRequest("the model failed: %s: %s" % (type(exc).__name__, _clip(str(exc), 500)), 500)

    # -- Open Inference Protocol v2 -------------------------------------------------------------

    def v2_live(self):
        return json_response(200, {"live": True})

    def v2_ready(self):
        ready = self.service.ready
        return json_response(200 if ready else 503, {"ready": ready})

    def v2_server(self):
        return json_response(200, {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": ["binary_tensor_data"]})

    def v2_model_ready(self):
        ready = self.service.ready
        return json_response(200 if ready else 503, {"name": self.service.config.model_name, "ready": ready})

    def v2_model_metadata(self):
        self._need_model()
        service = self.service
        sig = service.signatures[service.default]
        answer = {
            "name": service.config.model_name,
            "versions": [service.config.version],
            "platform": service.platform,
            "inputs": [codec.oip_tensor_meta(s) for s in sig.inputs],
            "outputs": [codec.oip_tensor_meta(s) for s in sig.outputs],
        }
        if len(service.signatures) > 1:
            answer["parameters"] = {"signature_name": sig.name, "signatures": sorted(service.signatures)}
        return json_response(200, answer)

    def v2_infer(self, environ):
        self._need_model()
        data = self._read_body(environ)
        binary = None
        header = environ.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH")
        if header is not None:
            try:
                size = int(header)
            except ValueError:
                raise BadRequest("Inference-Header-Content-Length %r is not a number" % _clip(header))
            if size < 0 or size > len(data):
                raise BadRequest("Inference-Header-Content-Length %d does not fit the %d-byte body" % (size, len(data)))
            data, binary = data[:size], data[size:]
        body = self._json_body(environ, data)
        params = codec.optional_object(body, "parameters", "'parameters'")
        sig = self._signature(params)
        request_id = body.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise BadRequest("'id' must be a string")
        inputs = codec.oip_inputs(body, sig, binary)
        wanted, as_binary = codec.oip_requested_outputs(body, sig)
        outputs = self._call(sig, inputs)
        names = wanted if wanted is not None else sorted(outputs)
        metas, blobs = [], []
        for name in names:
            if name not in outputs:
                raise BadRequest("the model did not answer output %r" % name, 500)
            meta, raw = codec.oip_output(name, outputs[name], name in as_binary)
            metas.append(meta)
            if raw is not None:
                blobs.append(raw)
        answer = {"model_name": self.service.config.model_name, "model_version": self.service.config.version, "outputs": metas}
        if request_id is not None:
            answer["id"] = request_id
        text = json.dumps(answer, separators=(",", ":")).encode("utf-8")
        if not blobs:
            return Response(200, text)
        return Response(200, text + b"".join(blobs), "application/octet-stream",
                        [("Inference-Header-Content-Length", str(len(text)))])

    # -- the rest -------------------------------------------------------------------------------

    def prometheus(self):
        return Response(200, self.metrics.registry.render(), self.metrics.registry.CONTENT_TYPE)

    def openapi(self):
        return json_response(200, openapi.document(self.service))


SIMPLE_ENDPOINTS = {"/v2/health/live": "v2_live", "/v2/health/ready": "v2_ready", "/v2": "v2_server",
                    "/metrics": "metrics", "/openapi.json": "openapi"}


def endpoint_of(path):
    """The route name for metrics labels: never the raw path, whose values a client chooses."""
    m = V1.match(path)
    if m:
        return "v1_" + ((m.group("rest") or "").strip("/:") or "status")
    m = V2.match(path)
    if m:
        return "v2_model_" + ((m.group("rest") or "").strip("/") or "metadata")
    return SIMPLE_ENDPOINTS.get(path, "other")


def _not_allowed(allowed):
    return error_response(405, "method not allowed here: use %s" % allowed, [("Allow", allowed)])


def _clip(text, limit=80):
    text = str(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."
