"""The benchmarks' webhook receiver: answers 200 at once and records when each webhook-id arrived."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.loopback import LoopbackServer, respond  # noqa: E402


class RecordingReceiver(LoopbackServer):
    thread_name = "bench-receiver"

    def __init__(self, port: int = 0):
        super().__init__(port)
        self.lock = threading.Lock()
        self.received: list[tuple[str, float]] = []  # (webhook-id, receipt time), duplicates included

    def handle(self, request, method: str) -> None:
        request.rfile.read(int(request.headers.get("content-length") or 0))
        now = time.time()
        with self.lock:
            self.received.append((request.headers.get("webhook-id"), now))
        respond(request, 200)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def first_seen(self) -> dict[str, float]:
        """webhook-id -> when it first arrived."""
        with self.lock:
            out: dict[str, float] = {}
            for webhook_id, at in self.received:
                out.setdefault(webhook_id, at)
            return out
