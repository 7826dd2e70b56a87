"""A loopback stand-in for Sentry's ingest: accepts envelopes at /api/<project>/envelope/ and keeps them.

Point a process at it with `SENTRY_DSN=receiver.dsn` (`http://key@127.0.0.1:PORT/1`). Envelopes are
decompressed (gzip, deflate, or brotli when the SDK has it) and parsed into items:
`{"type": "event" | "check_in" | ..., "headers": {...}, "payload": dict | bytes}`.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib

from tests.loopback import LoopbackServer, respond
from tests.waiting import wait_for


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


class SentryReceiver(LoopbackServer):
    thread_name = "sentry-receiver"

    def __init__(self):
        super().__init__()
        self.envelopes: list[tuple[dict, list[dict]]] = []
        self._lock = threading.Lock()

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
        return bool(wait_for(predicate, timeout))

    # -- HTTP -----------------------------------------------------------------------------------------
    def handle(self, request, method: str) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length)
        if method != "POST" or not request.path.rstrip("/").endswith("/envelope"):
            respond(request, 404)
            return
        envelope = parse_envelope(_decode(body, request.headers.get("Content-Encoding")))
        with self._lock:
            self.envelopes.append(envelope)
        answer = json.dumps({"id": envelope[0].get("event_id", "")}).encode()
        respond(request, 200, answer, {"Content-Type": "application/json"})

    @property
    def dsn(self) -> str:
        assert self._server is not None
        return f"http://key@127.0.0.1:{self.port}/1"
