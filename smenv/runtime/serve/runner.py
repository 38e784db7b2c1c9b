"""Model calls: a thread pool (TensorFlow's ops release the GIL), a queue limit, and optional batching.

One model in memory, called from several threads at once. The HTTP threads hand each call to this
runner and wait for it with a time limit, so a slow call answers 503 instead of holding the client
forever (the call itself runs on: TensorFlow cannot be interrupted).

Server-side batching (off by default, as in TensorFlow Serving): concurrent calls to the same
signature whose inputs all have a free first dimension, the same trailing shapes and dtypes are
stacked into one call of at most `max_batch_size` rows, waiting at most `batch_timeout` seconds for
more after the first; the answer is split back by rows. A call whose outputs do not have one row per
input row is answered one request at a time instead.

Python 3.5 syntax (see the package docstring).
"""

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import queue

import numpy as np


class Overloaded(Exception):
    """More calls waiting than the queue limit: HTTP 503."""


class BatchConfig(object):
    def __init__(self, max_batch_size=32, batch_timeout=0.002, threads=2):
        self.max_batch_size = max(1, int(max_batch_size))
        self.batch_timeout = max(0.0, float(batch_timeout))
        self.threads = max(1, int(threads))


class Runner(object):
    def __init__(self, adapter, signatures, threads=4, max_queue=64, batching=None, metrics=None):
        self.adapter = adapter
        self.signatures = signatures
        self.metrics = metrics
        self.max_queue = max(1, int(max_queue))
        self.pool = ThreadPoolExecutor(max_workers=max(1, int(threads)))
        self.pending = 0
        self.lock = threading.Lock()
        self.batching = batching
        self.batchers = {}
        if batching is not None:
            for name, sig in signatures.items():
                if sig.batchable():
                    self.batchers[name] = _Batcher(self, name, batching)

    def submit(self, signature_name, inputs):
        """A Future of {name: array}; raises Overloaded when the queue is full."""
        with self.lock:
            if self.pending >= self.max_queue:
                raise Overloaded("%d calls are waiting for the model already" % self.pending)
            self.pending += 1
        future = Future()
        future.add_done_callback(self._done)
        batcher = self.batchers.get(signature_name)
        if batcher is not None and all(getattr(v, "ndim", 0) >= 1 for v in inputs.values()):
            batcher.put(inputs, future)
        else:
            self.pool.submit(self._run_one, signature_name, inputs, future)
        return future

    def _done(self, _):
        with self.lock:
            self.pending -= 1

    def call(self, signature_name, inputs, rows):
        """The model's own call, timed; the one place the adapter is called."""
        started = time.perf_counter()
        try:
            return self.adapter.call(signature_name, inputs)
        finally:
            if self.metrics is not None:
                self.metrics.model_latency.observe(time.perf_counter() - started, signature_name)
                self.metrics.batch_size.observe(rows, signature_name)

    def _run_one(self, signature_name, inputs, future):
        if not future.set_running_or_notify_cancel():
            return
        try:
            rows = _rows(inputs)
            future.set_result(self.call(signature_name, inputs, rows))
        except BaseException as exc:
            future.set_exception(exc)

    def shutdown(self):
        for batcher in self.batchers.values():
            batcher.stop()
        self.pool.shutdown(wait=False)


def _rows(inputs):
    for value in inputs.values():
        return value.shape[0] if getattr(value, "ndim", 0) >= 1 else 1
    return 1


def _key(inputs):
    return tuple(sorted((name, value.dtype.str, value.shape[1:]) for name, value in inputs.items()))


class _Batcher(object):
    def __init__(self, runner, signature_name, config):
        self.runner = runner
        self.name = signature_name
        self.config = config
        self.queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="smenv-batcher-%s" % signature_name)
        self.thread.daemon = True
        self.thread.start()

    def put(self, inputs, future):
        self.queue.put((inputs, future))

    def stop(self):
        self.queue.put(None)

    def _loop(self):
        while True:
            first = self.queue.get()
            if first is None:
                return
            items = [first]
            rows = _rows(first[0])
            deadline = time.perf_counter() + self.config.batch_timeout
            while rows < self.config.max_batch_size:
                left = deadline - time.perf_counter()
                try:
                    item = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self.queue.put(None)
                    break
                items.append(item)
                rows += _rows(item[0])
            groups = {}
            for item in items:
                groups.setdefault(_key(item[0]), []).append(item)
            for group in groups.values():
                self.runner.pool.submit(self._run_group, group)

    def _run_group(self, group):
        group = [(inputs, f) for inputs, f in group if f.set_running_or_notify_cancel()]
        if not group:
            return
        if len(group) == 1:
            inputs, future = group[0]
            self._settle(future, lambda: self.runner.call(self.name, inputs, _rows(inputs)))
            return
        counts = [_rows(inputs) for inputs, _ in group]
        total = sum(counts)
        names = list(group[0][0])
        merged = dict((n, np.concatenate([inputs[n] for inputs, _ in group], axis=0)) for n in names)
        try:
            outputs = self.runner.call(self.name, merged, total)
        except Exception:  # one bad request fails the batch: answer each request on its own
            outputs = None
        if outputs is not None and all(getattr(v, "ndim", 0) >= 1 and v.shape[0] == total for v in outputs.values()):
            start = 0
            for (inputs, future), count in zip(group, counts):
                future.set_result(dict((k, v[start:start + count]) for k, v in outputs.items()))
                start += count
            return
        for inputs, future in group:
            self._settle(future, lambda inputs=inputs: self.runner.call(self.name, inputs, _rows(inputs)))

    @staticmethod
    def _settle(future, fn):
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)
