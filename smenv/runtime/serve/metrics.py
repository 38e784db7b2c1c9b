"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand.

prometheus_client is not used: it has no wheel before mid-2020 (so a binary-only lock under an
older cut-off cannot install it), and it would be one more package the user's pins might conflict
with. The format is small; tests/test_serve_api.py parses this output with prometheus_client's own
parser. Thread-safe: one lock around every update and the rendering.

Python 3.5 syntax (see the package docstring).
"""

import math
import threading

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names, values, extra=()):
    pairs = list(zip(names, values)) + list(extra)
    if not pairs:
        return ""
    return "{%s}" % ",".join('%s="%s"' % (k, _escape(v)) for k, v in pairs)


def _number(value):
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class _Metric(object):
    kind = "untyped"

    def __init__(self, registry, name, help_text, labels=()):
        self.name = name
        self.help = help_text
        self.labels = tuple(labels)
        self.lock = registry.lock
        self.values = {}
        registry.metrics.append(self)

    def header(self):
        return ["# HELP %s %s" % (self.name, self.help.replace("\\", "\\\\").replace("\n", "\\n")),
                "# TYPE %s %s" % (self.name, self.kind)]


class Counter(_Metric):
    kind = "counter"

    def inc(self, *labels, **kw):
        amount = kw.get("amount", 1)
        with self.lock:
            self.values[labels] = self.values.get(labels, 0) + amount

    def header(self):
        # Text format 0.0.4: a counter's samples and its HELP and TYPE lines all carry the _total name.
        return ["# HELP %s_total %s" % (self.name, self.help), "# TYPE %s_total counter" % self.name]

    def render(self):
        lines = self.header()
        for key in sorted(self.values):
            lines.append("%s_total%s %s" % (self.name, _labels(self.labels, key), _number(float(self.values[key]))))
        return lines

    def get(self, *labels):
        with self.lock:
            return self.values.get(labels, 0)


class Gauge(_Metric):
    kind = "gauge"

    def set(self, value, *labels):
        with self.lock:
            self.values[labels] = value

    def add(self, amount, *labels):
        with self.lock:
            self.values[labels] = self.values.get(labels, 0) + amount

    def render(self):
        lines = self.header()
        if not self.values and not self.labels:
            self.values[()] = 0
        for key in sorted(self.values):
            lines.append("%s%s %s" % (self.name, _labels(self.labels, key), _number(float(self.values[key]))))
        return lines


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, registry, name, help_text, labels=(), buckets=LATENCY_BUCKETS):
        _Metric.__init__(self, registry, name, help_text, labels)
        self.buckets = tuple(buckets)

    def observe(self, value, *labels):
        with self.lock:
            entry = self.values.get(labels)
            if entry is None:
                entry = self.values[labels] = [[0] * len(self.buckets), 0.0, 0]
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    entry[0][i] += 1
                    break
            entry[1] += value
            entry[2] += 1

    def render(self):
        lines = self.header()
        for key in sorted(self.values):
            counts, total, count = self.values[key]
            cumulative = 0
            for bound, n in zip(self.buckets, counts):
                cumulative += n
                lines.append("%s_bucket%s %d" % (self.name, _labels(self.labels, key, [("le", _number(float(bound)))]), cumulative))
            lines.append("%s_bucket%s %d" % (self.name, _labels(self.labels, key, [("le", "+Inf")]), count))
            lines.append("%s_sum%s %s" % (self.name, _labels(self.labels, key), _number(total)))
            lines.append("%s_count%s %d" % (self.name, _labels(self.labels, key), count))
        return lines


class Registry(object):
    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self):
        self.lock = threading.RLock()
        self.metrics = []

    def render(self):
        with self.lock:
            lines = []
            for metric in self.metrics:
                lines.extend(metric.render())
            return ("\n".join(lines) + "\n").encode("utf-8")


class ServerMetrics(object):
    """The metrics the server keeps; `endpoint` labels are route names, never raw paths."""

    def __init__(self):
        r = self.registry = Registry()
        self.requests = Counter(r, "smenv_requests", "HTTP requests answered, by endpoint and status code.", ("endpoint", "code"))
        self.errors = Counter(r, "smenv_request_errors", "Requests answered with an error, by endpoint and kind "
                              "(client: 4xx; timeout; overload; server: other 5xx).", ("endpoint", "kind"))
        self.latency = Histogram(r, "smenv_request_duration_seconds", "Time from the request read to the answer written by the application.", ("endpoint",))
        self.model_latency = Histogram(r, "smenv_model_call_duration_seconds", "Time inside the model's own call, by signature.", ("signature",))
        self.batch_size = Histogram(r, "smenv_batch_size", "Rows in each model call (with server-side batching: requests merged).", ("signature",), BATCH_BUCKETS)
        self.inflight = Gauge(r, "smenv_inflight_requests", "Requests being answered now.")
        self.ready = Gauge(r, "smenv_model_ready", "1 once the model is loaded and has answered its warm-up call.")
        self.load_seconds = Gauge(r, "smenv_model_load_seconds", "Time to import TensorFlow, load the model and answer the warm-up call, by stage.", ("stage",))
