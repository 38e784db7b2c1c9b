"""A model made of numpy, standing in for TensorFlow in the tests (and for trying the server without it).

`FakeAdapter` has the signatures a served model has in practice: one float input (TensorFlow
Serving's half_plus_two), several inputs and outputs with a `_bytes` output, strings, a fixed shape,
a classify and a regress signature that take serialised tf.Example protos (parsed here with a small
protobuf reader), and on request a slow one and a failing one. It records every call (signature,
rows), so tests can see warm-up and batching.

Factories for `python -m smenv.runtime.serve --adapter smenv.runtime.serve.testing:NAME`:
fake (the standard set), fake_slow (plus `slow` and `fail`), fake_slow_load (fake_slow after 1.5 s).

Python 3.5 syntax (see the package docstring).
"""

import os
import struct
import threading
import time

import numpy as np

from .adapter import CLASSIFY, REGRESS, Adapter, ModelInputError, Signature, TensorSpec


class FakeAdapter(Adapter):
    platform = "smenv_fake"

    def __init__(self, slow=False, fail=False, load_seconds=0.0):
        if load_seconds:
            time.sleep(load_seconds)
        self.calls = []
        self.lock = threading.Lock()
        sigs = [
            Signature("serving_default", [TensorSpec("x", "float32", [None])], [TensorSpec("y", "float32", [None])]),
            Signature("multi", [TensorSpec("a", "float32", [None, 2]), TensorSpec("b", "int64", [None])],
                      [TensorSpec("sum", "float32", [None, 2]), TensorSpec("count", "int64", [None]),
                       TensorSpec("label_bytes", "string", [None])]),
            Signature("text", [TensorSpec("text", "string", [None])],
                      [TensorSpec("length", "int32", [None]), TensorSpec("upper", "string", [None])]),
            Signature("fixed", [TensorSpec("m", "float64", [2, 3])], [TensorSpec("total", "float64", [])]),
            Signature("flags", [TensorSpec("f", "bool", [None, 3])], [TensorSpec("any", "bool", [None])]),
            Signature("classify_x_to_y", [TensorSpec("inputs", "string", [None])],
                      [TensorSpec("classes", "string", [None, 2]), TensorSpec("scores", "float32", [None, 2])], CLASSIFY),
            Signature("regress_x_to_y", [TensorSpec("inputs", "string", [None])], [TensorSpec("outputs", "float32", [None])], REGRESS),
        ]
        if slow:
            sigs.append(Signature("slow", [TensorSpec("seconds", "float32", [None])], [TensorSpec("slept", "float32", [None])]))
        if fail:
            sigs.append(Signature("fail", [TensorSpec("x", "float32", [None])], [TensorSpec("y", "float32", [None])]))
        self._signatures = dict((s.name, s) for s in sigs)

    def signatures(self):
        return self._signatures

    def call(self, signature_name, inputs):
        with self.lock:
            self.calls.append((signature_name, _rows(inputs)))
        if signature_name == "serving_default":
            return {"y": inputs["x"] * np.float32(0.5) + np.float32(2)}
        if signature_name == "multi":
            a, b = inputs["a"], inputs["b"]
            if a.shape[0] != b.shape[0]:
                raise ModelInputError("a has %d rows and b %d: they must agree" % (a.shape[0], b.shape[0]))
            labels = np.array([("row%d" % i).encode() + b"\xff" for i in range(a.shape[0])], dtype=object)
            return {"sum": a + b[:, None].astype(np.float32), "count": b + 1, "label_bytes": labels}
        if signature_name == "text":
            text = inputs["text"]
            return {"length": np.array([len(t) for t in text], dtype=np.int32),
                    "upper": np.array([t.upper() for t in text], dtype=object)}
        if signature_name == "fixed":
            return {"total": np.array(inputs["m"].sum())}
        if signature_name == "flags":
            return {"any": inputs["f"].any(axis=1)}
        if signature_name in ("classify_x_to_y", "regress_x_to_y"):
            xs = np.array([_feature_x(e) for e in inputs["inputs"]], dtype=np.float32)
            if signature_name == "regress_x_to_y":
                return {"outputs": xs * np.float32(0.5) + np.float32(2)}
            scores = np.stack([1.0 / (1.0 + np.exp(-xs)), 1.0 - 1.0 / (1.0 + np.exp(-xs))], axis=1).astype(np.float32)
            classes = np.array([[b"positive", b"negative"]] * len(xs), dtype=object).reshape(len(xs), 2)
            return {"classes": classes, "scores": scores}
        if signature_name == "slow":
            seconds = float(min(10.0, max(0.0, float(inputs["seconds"].max()) if inputs["seconds"].size else 0.0)))
            time.sleep(seconds)
            return {"slept": inputs["seconds"]}
        if signature_name == "fail":
            raise RuntimeError("this signature always fails")
        raise KeyError(signature_name)

    def calls_of(self, signature_name):
        with self.lock:
            return [rows for name, rows in self.calls if name == signature_name]


def _rows(inputs):
    for value in inputs.values():
        return int(value.shape[0]) if value.ndim else 1
    return 1


# -- a small reader of serialised tf.train.Example -------------------------------------------------


def _varint(data, pos):
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ModelInputError("a serialised tf.Example ends inside a varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ModelInputError("a varint longer than 10 bytes")


def fields(data):
    """[(field number, wire type, value)] of a protobuf message; values of length-delimited fields as bytes."""
    out = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wtype = key >> 3, key & 7
        if wtype == 0:
            value, pos = _varint(data, pos)
        elif wtype == 2:
            n, pos = _varint(data, pos)
            if pos + n > len(data):
                raise ModelInputError("a length-delimited field runs past the end")
            value, pos = bytes(data[pos:pos + n]), pos + n
        elif wtype == 5:
            value, pos = bytes(data[pos:pos + 4]), pos + 4
        elif wtype == 1:
            value, pos = bytes(data[pos:pos + 8]), pos + 8
        else:
            raise ModelInputError("wire type %d is not in tf.Example" % wtype)
        out.append((number, wtype, value))
    return out


def parse_example(data):
    """{feature name: list of values} of a serialised tf.train.Example (bytes, floats or ints)."""
    features = {}
    for number, _, body in fields(data):
        if number != 1:
            continue
        for fnum, _, entry in fields(body):
            if fnum != 1:
                continue
            name, feature = None, b""
            for enum_, _, v in fields(entry):
                if enum_ == 1:
                    name = v.decode("utf-8")
                elif enum_ == 2:
                    feature = v
            values = []
            for kind, _, lst in fields(feature):
                for vnum, vtype, v in fields(lst):
                    if kind == 1:
                        values.append(v)
                    elif kind == 2:
                        values.extend(struct.unpack("<%df" % (len(v) // 4), v) if vtype == 2 else struct.unpack("<f", v))
                    elif kind == 3:
                        if vtype == 2:
                            pos = 0
                            while pos < len(v):
                                n, pos = _varint(v, pos)
                                values.append(n - (1 << 64) if n >= 1 << 63 else n)
                        else:
                            values.append(v - (1 << 64) if v >= 1 << 63 else v)
            features[name] = values
    return features


def _feature_x(serialised):
    values = parse_example(bytes(serialised)).get("x") or [0.0]
    value = values[0]
    if isinstance(value, bytes):
        raise ModelInputError("feature x must be a number, not bytes")
    return float(value)


# -- factories for --adapter ---------------------------------------------------------------------


def fake():
    return FakeAdapter()


def fake_slow():
    return FakeAdapter(slow=True, fail=True)


def fake_slow_load():
    return FakeAdapter(slow=True, fail=True, load_seconds=float(os.environ.get("SMENV_FAKE_LOAD_SECONDS", "1.5")))


# -- serving in a thread, for tests ----------------------------------------------------------------


class ThreadedServer(object):
    """A Server on 127.0.0.1, an ephemeral port, in a daemon thread; no signal handlers (not the main thread)."""

    def __init__(self, adapter_factory, load=True, **config):
        from .app import Config, Service
        from .server import Server

        config.setdefault("host", "127.0.0.1")
        config.setdefault("port", 0)
        self.service = Service(Config(**config))
        self.server = Server(self.service, adapter_factory)
        self.url = "http://127.0.0.1:%d" % self.server.port
        self.exit_status = None
        self.thread = threading.Thread(target=self._run, name="smenv-test-server")
        self.thread.daemon = True
        self.thread.start()
        if load:
            self.service.load(adapter_factory)

    def _run(self):
        self.exit_status = self.server.serve_forever()

    def stop(self, timeout=15.0):
        self.server.begin_drain()
        self.thread.join(timeout)
        return self.exit_status
