"""A real HTTP pipeline on 127.0.0.1 for the http adapter's tests.

The server answers each request with the next scripted ``Answer`` (then with ``default``), and
counts what a test wants to check: the requests it received, the TCP connections it accepted, and
the most requests it was serving at once.

    with PipelineServer([Answer(500), Answer(200, {"answer": "ok"})]) as server:
        ... HttpPipeline(adapter="http", url=server.url) ...
        assert len(server.requests) == 2
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local_server import LocalServer


@dataclass(frozen=True)
class Answer:
    """One scripted reply. ``body`` is sent as JSON unless it is bytes."""

    status: int = 200
    body: Any = field(default_factory=lambda: {"answer": "ok"})
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Wait before answering (cut short when the server stops, so no test waits it out)."""
    drop: bool = False
    """Close the connection without answering."""


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    path: str
    headers: dict[str, str]
    body: Any


class PipelineServer(LocalServer):
    def __init__(self, script: Iterable[Answer] = (), default: Answer | None = None) -> None:
        self.script: deque[Answer] = deque(script)
        self.default = default or Answer()
        self.requests: list[Seen] = []
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.pipeline = self
        super().__init__(server)
        self.url = f"http://127.0.0.1:{self.port}/answer"

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        # Handler threads wait on kept-alive connections: end those, then join the threads.
        with self.lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join()

    def next_answer(self, seen: Seen) -> Answer:
        with self.lock:
            self.requests.append(seen)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.script.popleft() if self.script else self.default

    def done(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def opened(self, sock: socket.socket) -> None:
        with self.lock:
            self.connections += 1
            self._sockets.add(sock)

    def closed(self, sock: socket.socket) -> None:
        with self.lock:
            self._sockets.discard(sock)


class _Server(ThreadingHTTPServer):
    # Joined on close (not daemon threads), so no handler outlives its test.
    daemon_threads = False
    block_on_close = True
    pipeline: PipelineServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client's pool can reuse connections
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle's algorithm and the client's
        # delayed ACK hold every reply on a kept-alive connection for ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.pipeline.opened(self.connection)

    def finish(self) -> None:
        self.server.pipeline.closed(self.connection)
        super().finish()

    def do_POST(self) -> None:
        pipeline = self.server.pipeline
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        answer = pipeline.next_answer(Seen(self.path, dict(self.headers.items()), body))
        try:
            if answer.delay_s:
                pipeline.stopping.wait(answer.delay_s)
            if answer.drop:
                self.close_connection = True
                return
            data = (
                answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
            )
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its read timeout) before the slow answer came.
            self.close_connection = True
        finally:
            pipeline.done()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet test output
