"""Test support for the alert tests: a real HTTP receiver on loopback, items, and a worker in a thread.

The receiver records every request (path, headers, body) and answers from a plan: a list of responses
given in order, then the default. A planned response may hang (sleep) before answering.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field

from alerts.worker import AlertWorker
from tests.loopback import LoopbackServer, free_port, respond
from tests.waiting import wait_for


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict = field(default_factory=dict)
    hang: float = 0.0  # seconds to wait before answering (a hung receiver)


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


class Receiver(LoopbackServer):
    """A webhook receiver. It keeps its port across stop/start: a receiver that is down, then back."""

    thread_name = "webhook-receiver"

    def __init__(self, *, port: int | None = None, default: Answer | None = None, plan=(), delay: float = 0.0):
        super().__init__(port or free_port())
        self.default = default or Answer()
        self.plan = list(plan)
        self.delay = delay  # every answer waits this long (a slow receiver)
        self.requests: list[Received] = []
        self._lock = threading.Condition()
        self._release = threading.Event()  # set on stop so hung handlers end

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def handle(self, request, method: str) -> None:
        length = int(request.headers.get("content-length") or 0)
        body = request.rfile.read(length)
        with self._lock:
            self.requests.append(Received(request.path, {k.lower(): v for k, v in request.headers.items()}, body))
            answer = self.plan.pop(0) if self.plan else self.default
            self._lock.notify_all()
        if answer.hang:
            self._release.wait(answer.hang)
        if self.delay:
            time.sleep(self.delay)
        try:
            respond(request, answer.status, answer.body, answer.headers)
        except OSError:
            pass  # the client gave up (timeout): that is the point of a hung answer

    def start(self) -> Receiver:
        self._release.clear()
        return super().start()

    def stop(self) -> None:
        self._release.set()
        super().stop()

    def ids(self) -> list[str]:
        with self._lock:
            return [r.headers.get("webhook-id") for r in self.requests]

    def wait_for(self, predicate, timeout: float = 20.0) -> bool:
        """Wait until predicate(requests) holds."""
        return bool(wait_for(lambda: predicate(self.snapshot()), timeout))

    def snapshot(self) -> list:
        with self._lock:
            return list(self.requests)

    def wait_count(self, n: int, timeout: float = 20.0) -> bool:
        return self.wait_for(lambda reqs: len(reqs) >= n, timeout)

    def wait_ids(self, ids, timeout: float = 30.0) -> bool:
        wanted = set(ids)
        return self.wait_for(lambda reqs: wanted <= {r.headers.get("webhook-id") for r in reqs}, timeout)


def item(n: int, **extra) -> dict:
    base = {
        "id": f"ddn-{n}", "url": f"https://daydaynews.cc/zh-hant/international/{n}.html", "source": "daydaynews",
        "title": f"美俄會談 第{n}輪", "published_at": "2025-03-01T10:00:00+08:00", "category": "國際",
        "summary": "美國與俄羅斯代表在利雅得舉行會談。", "body": "美國與俄羅斯代表在利雅得舉行會談。\n雙方同意繼續對話。",
        "lang": "zh-Hant", "topic": {"name": "us-russia-talks", "score": 3.0, "matched": ["美俄", "會談"]},
        "simhash": "0123456789abcdef", "fetched_at": "2025-03-01T02:00:05+00:00", "views": 10, "images": [],
    }
    base.update(extra)
    return base


def publish(client, keys, items) -> list[str]:
    """XADD items the way the crawler does."""
    ids = []
    for it in items:
        ids.append(client.xadd(keys.items, {"data": json.dumps(it, ensure_ascii=False), "id": it["id"], "url": it["url"]}))
    return ids


@contextlib.contextmanager
def running_worker(client, settings, **kwargs):
    """An AlertWorker in a thread; stopped (in-flight deliveries finished) on leaving the block."""
    worker = AlertWorker(client, settings, **kwargs)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the worker did not stop"


FAST = {  # small backoff so retry tests take fractions of a second
    "NEWSWATCH_WEBHOOK_ALLOW_PRIVATE": "1",
    "NEWSWATCH_WEBHOOK_BACKOFF_BASE": "0.05",
    "NEWSWATCH_WEBHOOK_BACKOFF_CAP": "0.5",
    "NEWSWATCH_WEBHOOK_TIMEOUT": "2",
    "NEWSWATCH_WEBHOOK_CLAIM_IDLE": "1",
}
