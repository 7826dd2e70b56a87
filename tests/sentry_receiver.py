"""A loopback stand-in for Sentry's ingest: accepts envelopes at /api/<project>/envelope/ and keeps them.

Point a process at it with `SENTRY_DSN=receiver.dsn` (`http://key@127.0.0.1:PORT/1`). Envelopes are
decompressed (gzip, deflate, or brotli when the SDK has it) and parsed into items:
`{"type": "event" | "check_in" | ..., "headers": {...}, "payload": dict | bytes}`.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def parse_envelope(data: bytes) -> tuple[dict, list[dict]]:
    """Sentry's envelope format: a header line, then per item a header line and a payload."""
    header_line, _, rest = data.partition(b"\n")
    header = json.loads(header_line) if header_line.strip() else {}
    items = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        if not item_line.strip():
            continue
        item_header = json.loads(item_line)
        length = item_header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length:]
            if rest.startswith(b"\n"):
                rest = rest[1:]
        try:
            parsed = json.loads(payload)
        except ValueError:
            parsed = payload
        items.append({"type": item_header.get("type"), "headers": item_header, "payload": parsed})
    return header, items


def _decode(body: bytes, encoding: str) -> bytes:
    encoding = (encoding or "").lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli

        return brotli.decompress(body)
    return body


class SentryReceiver:
    def __init__(self):
        self.envelopes: list[tuple[dict, list[dict]]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- what arrived ---------------------------------------------------------------------------------
    def items(self, kind: str | None = None) -> list[dict]:
        with self._lock:
            return [item["payload"] for _, items in self.envelopes for item in items
                    if kind is None or item["type"] == kind]

    def events(self) -> list[dict]:
        return self.items("event")

    def checkins(self) -> list[dict]:
        return self.items("check_in")

    def wait_for(self, predicate, timeout: float = 60.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.1)
        return bool(predicate())

    # -- HTTP -----------------------------------------------------------------------------------------
    def start(self) -> SentryReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/envelope"):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                envelope = parse_envelope(_decode(body, self.headers.get("Content-Encoding")))
                with receiver._lock:
                    receiver.envelopes.append(envelope)
                answer = json.dumps({"id": envelope[0].get("event_id", "")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="sentry-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SentryReceiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def dsn(self) -> str:
        assert self._server is not None
        return f"http://key@127.0.0.1:{self._server.server_address[1]}/1"
