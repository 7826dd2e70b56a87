"""The one way the tests run an HTTP server: threaded, on 127.0.0.1, stopped when the test is done.

Subclasses answer requests in `handle(request, method)`; the replica of the site, the webhook receiver and
the Sentry envelope receiver are all built on it.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (for servers a test starts, stops and restarts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LoopbackServer:
    thread_name = "loopback"

    def __init__(self, port: int = 0):
        self._port = port
        self._server: ThreadingHTTPServer | None = None

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def start(self, port: int | None = None):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: each server keeps its own record
                pass

            def do_GET(self):
                owner.handle(self, "GET")

            def do_HEAD(self):
                owner.handle(self, "HEAD")

            def do_POST(self):
                owner.handle(self, "POST")

        ThreadingHTTPServer.allow_reuse_address = True  # a receiver restarted on its port comes back at once
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port if port is None else port), Handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name=self.thread_name, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port


def respond(request: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict | None = None,
            head: bool = False) -> None:
    """Send one whole answer with its Content-Length (a client that hung up meanwhile is not an error:
    the fault tests make the crawler give up on purpose)."""
    try:
        # Head and body go out in two writes: with Nagle on, the body waits for the ACK of the head, which
        # the client's kernel delays ~40 ms on loopback. A real site's server does not stall so; this one
        # must not either, or the benchmarks measure the stall (bench/crawl_overhead: 47 ms per request).
        request.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request.send_response(status)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if body and not head:
            request.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        request.close_connection = True
