"""Acknowledgements of delivered entries, sent in batches by one thread per endpoint.

A delivery thread hands the entry id over and goes on to its next item instead of waiting for a Redis
round trip of its own: profiling the worker (docs/performance.md) showed the delivery threads waiting
longer for their `XACK` than for the receiver. The thread sends whatever has been handed over since its
last round trip as one `MULTI / XACK id… / HDEL retry id… / EXEC`: idle, that is one id at once; under load
the batch grows by itself. At-least-once is unchanged: an entry is acknowledged only after its delivery,
and one whose acknowledgement is lost (a crash, Redis down) stays pending and is delivered again. The
runner keeps an entry as its own until the acknowledgement is sent (`done`), so it never mistakes one
waiting here for an orphan.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)

MAX_BATCH = 500
REDIS_ERROR_PAUSE = 1.0
_CLOSE = object()


class AckBatcher:
    def __init__(self, client, stream: str, group: str, retry_key: str, done: Callable[[list[str]], None]):
        self.client = client
        self.stream, self.group, self.retry_key = stream, group, retry_key
        self.done = done
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self, name: str) -> None:
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def add(self, entry_id: str) -> None:
        self._queue.put(entry_id)

    def close(self, timeout: float) -> None:
        """Send what was handed over (one try if Redis fails: those entries stay pending), then stop."""
        if self._thread is not None:
            self._queue.put(_CLOSE)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        batch: list[str] = []
        closing = False
        while True:
            if not batch and not closing:
                first = self._queue.get()
                if first is _CLOSE:
                    return
                batch.append(first)
            while len(batch) < MAX_BATCH and not closing:
                try:
                    entry_id = self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry_id is _CLOSE:
                    closing = True
                else:
                    batch.append(entry_id)
            if batch:
                try:
                    self._send(batch)
                    batch = []
                except redis.RedisError as exc:
                    log.warning("could not acknowledge %d deliveries (%s); %s", len(batch), exc,
                                "they stay pending" if closing else "retrying")
                    if closing:
                        return
                    time.sleep(REDIS_ERROR_PAUSE)
                    continue
            if closing and self._queue.empty():
                return

    def _send(self, batch: list[str]) -> None:
        pipe = self.client.pipeline(transaction=True)  # the retry records go with the XACK, atomically
        pipe.xack(self.stream, self.group, *batch)
        pipe.hdel(self.retry_key, *batch)
        pipe.execute()
        self.done(batch)
