"""A fault-injecting HTTP proxy for the fault tests: in front of a real registry (TCP on 127.0.0.1) or of
the real Docker engine (a unix socket), passing every request through until a rule says otherwise.

Each request gets its own upstream connection, sent with `Connection: close` so that the response ends
when upstream closes it: the proxy frames requests (it must see the method, path and body) but relays
responses as raw bytes, and never has to parse them. Go's clients (the engine pushing) and requests
(docker-py talking to the engine) both open a new connection when a response says `close`.

A `Rule` matches requests by method and a regular expression on the path, and does one of:
  - `status`: answer that HTTP status itself (the request body is read and dropped);
  - `cut_after`: forward the head and that many bytes of the body, then close both sides with no answer
    (a peer that went away mid-upload); `cut_after=0` cuts as soon as the request arrives;
  - `hang`: read the request and never answer (until the proxy stops): a peer that stopped responding;
  - `cut_answer_after`: pass the request, and close both sides after that many bytes of the answer
    (a streamed answer, such as a push's progress, cut off).
Rules are checked in order; `after` lets that many matching requests through before it fires, and `times`
limits how often it fires (None: always). `hits` records, per
rule, the requests it fired on, so a test can assert that its fault really happened.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Rule:
    method: str  # "PUT", or "*" for any
    path: str  # regular expression, searched in the request path
    status: int | None = None
    cut_after: int | None = None
    hang: bool = False
    cut_answer_after: int | None = None  # pass the request, then close both sides after this many answer bytes
    times: int | None = None
    after: int = 0  # let this many matching requests through first
    hits: list[str] = field(default_factory=list)
    passed: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and len(self.hits) >= self.times:
            return False
        if not ((self.method in ("*", method)) and re.search(self.path, path) is not None):
            return False
        if self.passed < self.after:
            self.passed += 1
            return False
        return True


class FaultProxy:
    """`with FaultProxy(listen, upstream) as proxy:`; `proxy.rules` may be replaced between requests.

    listen/upstream: ("127.0.0.1", port) for TCP, or a filesystem path for a unix socket (listen=None
    picks a free port on 127.0.0.1)."""

    def __init__(self, upstream: tuple[str, int] | str, listen: str | Path | None = None):
        self.upstream = upstream
        self.rules: list[Rule] = []
        self.requests: list[str] = []  # "METHOD PATH" of every request seen, in order
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._stopping = threading.Event()
        if listen is None:
            self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._server.bind(("127.0.0.1", 0))
        else:
            self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._server.bind(str(listen))
        self.listen = listen
        self._server.listen(64)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def host(self) -> str:
        """127.0.0.1:PORT (TCP proxies)."""
        return f"127.0.0.1:{self._server.getsockname()[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self._server.close()
        with self._lock:
            for s in list(self._open):
                _close(s)
        if isinstance(self.listen, (str, Path)) and os.path.exists(self.listen):
            os.unlink(self.listen)

    # -- plumbing -------------------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self.upstream, tuple):
            return socket.create_connection(self.upstream, timeout=30)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.upstream)
        return s

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.update(socks)

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            self._track(client)
            if client.recv(1, socket.MSG_PEEK) == b"\x16":
                return  # a TLS hello: the engine tries HTTPS first, and falls back to HTTP at once on a close
            reader = client.makefile("rb")
            head = _read_head(reader)
            if head is None:
                return
            method, path, lines = head
            with self._lock:
                self.requests.append(f"{method} {path}")
                rule = next((r for r in self.rules if r.matches(method, path)), None)
                if rule is not None:
                    rule.hits.append(f"{method} {path}")
            if rule is not None and rule.hang:
                _drain_body(reader, lines)
                self._stopping.wait()
                return
            if rule is not None and rule.status is not None:
                _drain_body(reader, lines)
                body = f"fault injected by the test proxy: {rule.status}\n".encode()
                client.sendall(
                    f"HTTP/1.1 {rule.status} Injected\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n".encode() + body
                )
                return
            upstream = self._connect_upstream()
            upstream.settimeout(None)
            self._track(upstream)
            kept = [line for line in lines[1:] if not line.lower().startswith(b"connection:")]
            upstream.sendall(b"\r\n".join([lines[0], *kept, b"Connection: close", b"", b""]))
            answer_limit = rule.cut_answer_after if rule is not None else None
            back = threading.Thread(target=_pump, args=(upstream, client, answer_limit), daemon=True)
            back.start()
            limit = rule.cut_after if rule is not None else None
            if not _forward_body(reader, upstream, lines, limit):
                return  # cut: both sides are closed in `finally`, with no answer
            back.join()
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                if s is not None:
                    _close(s)
                    with self._lock:
                        self._open.discard(s)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


def _read_head(reader) -> tuple[str, str, list[bytes]] | None:
    lines = []
    while True:
        line = reader.readline(65536)
        if not line:
            return None
        line = line.rstrip(b"\r\n")
        if not line:
            break
        lines.append(line)
    method, path = lines[0].decode("latin-1").split(" ")[:2]
    return method, path, lines


def _header(lines: list[bytes], name: str) -> str | None:
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.encode():
            return value.strip().decode("latin-1")
    return None


def _body_chunks(reader, lines: list[bytes]):
    """The request body as raw bytes (chunk framing included), Content-Length or chunked."""
    length = _header(lines, "content-length")
    if length is not None:
        yield from _exactly(reader, int(length))
    elif (_header(lines, "transfer-encoding") or "").lower() == "chunked":
        while True:
            size_line = reader.readline(1024)
            if not size_line:
                return
            yield size_line
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    trailer = reader.readline(65536)
                    yield trailer
                    if trailer in (b"\r\n", b"\n", b""):
                        return
            yield from _exactly(reader, size + 2)  # the data and its CRLF


def _exactly(reader, left: int):
    """`left` bytes from `reader`, in pieces of at most 64 KiB, or fewer if the peer stops sending."""
    while left > 0:
        data = reader.read1(min(left, 1 << 16))
        if not data:
            return
        left -= len(data)
        yield data


def _drain_body(reader, lines: list[bytes]) -> None:
    for _ in _body_chunks(reader, lines):
        pass


def _forward_body(reader, upstream: socket.socket, lines: list[bytes], limit: int | None) -> bool:
    """Send the body upstream; False (nothing more sent) once `limit` bytes went."""
    sent = 0
    if limit == 0:
        return False
    for data in _body_chunks(reader, lines):
        if limit is not None and sent + len(data) >= limit:
            upstream.sendall(data[: limit - sent])
            return False
        upstream.sendall(data)
        sent += len(data)
    return True


def _pump(src: socket.socket, dst: socket.socket, limit: int | None = None) -> None:
    sent = 0
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            if limit is not None and sent + len(data) >= limit:
                dst.sendall(data[: limit - sent])
                _close(dst)
                _close(src)
                return
            dst.sendall(data)
            sent += len(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
