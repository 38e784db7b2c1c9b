"""waitress, set up for serving one model: limits, JSON errors, a background load, a SIGTERM drain.

waitress's main thread reads and buffers each whole request (asynchronous I/O) before one of its
`threads` runs the WSGI application, so a slow or silent client never holds a thread; its limits
(header and body size, idle channel timeout, connection count) are its own settings. Two things it
does not do are added here, on attributes present from waitress 1.3.1 (the oldest a lock may hold,
for 2019 cut-offs) to 3.x, which tests/test_serve_waitress_versions.py runs against:

- its own refusals (a body over max_request_body_size, a malformed request line or header) are
  answered as {"error": ...} JSON, by a channel class whose error task writes JSON;
- SIGTERM (and SIGINT) drains, which waitress cannot do (Pylons/waitress issue 198): readiness turns
  false, the listening socket stops accepting, answers carry `Connection: close` (set by a task
  class, since a WSGI application may not set hop-by-hop headers), idle keep-alive
  connections are closed, and the process exits once no request is in flight and every answer is
  written, or after `drain_seconds` at the latest. A second signal exits at once.

The model loads in a background thread after the port is bound, so /v2/health/live answers at once
and /v2/health/ready only after the load and the warm-up call.

Python 3.5 syntax (see the package docstring).
"""

import json
import logging
import os
import signal
import socket
import sys
import threading
import time

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask, WSGITask

from .app import Application, Service, log

LOOP_TIMEOUT = 0.25  # seconds between checks of the drain state; answers do not wait for it


class JsonErrorTask(ErrorTask):
    """waitress's own refusals (400, 413, 431, ...) as {"error": ...} instead of plain text."""

    def execute(self):
        e = self.request.error
        message = "%s: %s" % (e.reason, str(e.body).strip()) if getattr(e, "body", "") else e.reason
        body = json.dumps({"error": message}).encode("utf-8")
        self.status = "%d %s" % (e.code, e.reason)
        self.response_headers.append(("Content-Type", "application/json"))
        self.response_headers.append(("Connection", "close"))
        self.close_on_finish = True
        self.content_length = len(body)
        self.write(body)


class DrainingTask(WSGITask):
    """While draining, every answer says `Connection: close` and the connection closes after it.

    A WSGI application may not set hop-by-hop headers (PEP 3333; waitress answers 500 if it does),
    so this is done where waitress decides: as if the client had asked to close.
    """

    def build_response_header(self):
        if getattr(self.channel.server, "smenv_draining", False):
            self.request.headers["CONNECTION"] = "close"
        return WSGITask.build_response_header(self)


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask
    task_class = DrainingTask


class Server(object):
    """One model served on config.host:config.port until a signal (or stop()) drains it."""

    def __init__(self, service, factory=None):
        self.service = service
        self.factory = factory
        self.config = service.config
        self.drain_started = None
        self.stopping = False
        config = self.config
        _quiet_waitress_queue()
        self.waitress = create_server(
            Application(service),
            host=config.host,
            port=config.port,
            threads=config.threads,
            ident="smenv",
            max_request_body_size=config.max_body,
            max_request_header_size=64 * 1024,
            # Bodies and answers stay in memory (up to the body limit), never in temporary files, so
            # the server runs on a read-only root filesystem.
            inbuf_overflow=config.max_body + 1,
            outbuf_overflow=1 << 30,
            channel_timeout=config.channel_timeout,
            connection_limit=config.connection_limit,
            asyncore_use_poll=True,
            expose_tracebacks=False,
        )
        self.waitress.channel_class = JsonErrorChannel
        self.port = int(self.waitress.effective_port)

    def start_loading(self):
        if self.factory is None:
            return None
        thread = threading.Thread(target=self.service.load, args=(self.factory,), name="smenv-load")
        thread.daemon = True
        thread.start()
        return thread

    def install_signal_handlers(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame):
        if self.drain_started is not None:
            log("second signal: exiting without waiting")
            self.stopping = True
            raise SystemExit(1)
        log("signal %d: draining (up to %gs), no longer ready" % (signum, self.config.drain_seconds))
        self.begin_drain()

    def begin_drain(self):
        if self.drain_started is None:
            self.drain_started = time.time()
            self.waitress.smenv_draining = True
            self.service.draining = True
            self.service.metrics.ready.set(0)

    def serve_forever(self):
        """Run until drained; returns the exit status (0 when every in-flight request was answered)."""
        w = self.waitress
        log("listening on %s:%d (model %r)" % (self.config.host, self.port, self.config.model_name))
        try:
            while True:
                wasyncore.loop(timeout=LOOP_TIMEOUT, use_poll=True, map=w._map, count=1)
                if self.drain_started is None:
                    continue
                self._stop_accepting()
                if self._drained():
                    log("drained: every request answered")
                    return 0
                if time.time() - self.drain_started > self.config.drain_seconds:
                    log("drain time (%gs) is up with %d request(s) in flight: exiting" % (self.config.drain_seconds, self.service.inflight))
                    return 1
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 1
        finally:
            self._close()

    def _stop_accepting(self):
        w = self.waitress
        if w.accepting:
            w.accepting = False
            try:  # Linux: a listening socket shut down refuses new connections at once
                w.socket.shutdown(socket.SHUT_RDWR)
            except (OSError, socket.error):
                pass
        # Idle keep-alive connections close now; busy ones after their answer (Connection: close).
        w.adj.channel_timeout = 0
        w.next_channel_cleanup = 0

    def _drained(self):
        if self.service.inflight:
            return False
        for channel in list(self.waitress.active_channels.values()):
            if channel.requests or _pending_output(channel):
                return False
        return True

    def _close(self):
        try:
            self.waitress.task_dispatcher.shutdown(cancel_pending=True, timeout=0.2)
        except Exception:
            pass
        try:
            wasyncore.close_all(self.waitress._map)
        except Exception:
            pass
        if self.service.runner is not None:
            self.service.runner.shutdown()


def _pending_output(channel):
    total = getattr(channel, "total_outbufs_len", None)  # waitress >= 1.4
    if total is not None:
        return total > 0
    return any(len(buf) for buf in getattr(channel, "outbufs", ()))


def serve(config, factory):
    """Serve the model `factory()` loads, with `config`; returns the process exit status."""
    service = Service(config)
    server = Server(service, factory)
    server.install_signal_handlers()
    server.start_loading()
    status = server.serve_forever()
    if status != 0:
        # Model calls still running cannot be interrupted, and Python would wait for their threads
        # (concurrent.futures joins its workers at exit): leave now, as the drain deadline says.
        sys.stderr.flush()
        os._exit(status)
    return status


def _quiet_waitress_queue():
    """waitress warns "Task queue depth is N" for every request that waits for a thread: under load,
    thousands of lines a second on stderr (Python's last-resort handler), which cost the CPU the
    requests need. That backlog is normal with more clients than threads; the server's own limit
    (SMENV_MAX_QUEUE) and /metrics say when it matters. waitress's other warnings keep our prefix."""
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    log = logging.getLogger("waitress")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("smenv-serve: waitress: %(message)s"))
        log.addHandler(handler)
        log.propagate = False
