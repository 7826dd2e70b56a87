"""Acknowledgements of delivered entries, sent with the delivery thread's next round trip to Redis.

Each delivery thread keeps the ids it has delivered (`add`) and sends them with its next request to Redis,
which it makes anyway: reading its next entries, or checking a retry. That request becomes one
`MULTI / XACK id… / HDEL retry id… / <the read or check> / EXEC`. Profiling the worker (docs/performance.md)
showed a round trip of its own per item first, then a separate acknowledging thread, as the largest costs
after the POST itself. At-least-once is unchanged: an entry is acknowledged only after its delivery (at the
latest after the thread's next delivery: `send_if_held`), and one whose acknowledgement is lost (a crash,
Redis down) stays pending and is delivered again. The runner keeps an entry as its own until the
acknowledgement is sent (`done`), so it never mistakes one waiting here for an orphan.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from alerts.membership import Entry, Membership
from alerts.packed_read import PackedRead, Unpacked

log = logging.getLogger(__name__)


class PendingAcks:
    """The delivered, not yet acknowledged entries of one delivery thread (not thread-safe: one per thread)."""

    def __init__(self, client, stream: str, group: str, retry_key: str, done: Callable[[list[str]], None]):
        self.client = client
        self.stream, self.group, self.retry_key = stream, group, retry_key
        self.done = done
        self.ids: list[str] = []
        self._since = 0.0  # when the oldest held id was added

    def add(self, entry_id: str) -> None:
        if not self.ids:
            self._since = time.monotonic()
        self.ids.append(entry_id)

    def send_if_held(self, seconds: float) -> None:
        """Send now, in a round trip of its own, what has been held longer than `seconds`: a slow receiver
        must not hold an acknowledgement back for the rest of the thread's read (a crash would repeat it)."""
        if self.ids and time.monotonic() - self._since > seconds:
            try:
                self.exchange()
            except redis.RedisError:
                pass  # kept for the thread's next round trip

    def exchange(self, *asks: Callable) -> list:
        """One round trip: the acknowledgements so far, then each of `asks(pipe)`; their answers.

        The retry records go with the `XACK`, atomically. On a Redis error nothing is taken as sent: the
        ids stay here for the next round trip (`XACK` of an acknowledged id is harmless).
        """
        ids = self.ids
        pipe = self.client.pipeline(transaction=True)
        if ids:
            pipe.xack(self.stream, self.group, *ids)
            pipe.hdel(self.retry_key, *ids)
        for ask in asks:
            ask(pipe)
        answers = pipe.execute()
        if ids:
            self.ids = []
            self.done(ids)
            return answers[2:]
        return answers

    def read_new(self, packed: PackedRead, member: Membership, count: int) -> list[Entry]:
        """The acknowledgements so far, then up to `count` new entries read: the usual round trip, packed by
        hand (packed_read.py), or through the pipeline when it cannot be (`Unpacked`)."""
        ids = self.ids
        try:
            entries = packed.exchange(ids, member.consumer, count)
        except Unpacked:
            [reply] = self.exchange(lambda pipe: member.queue_read_new(pipe, count))
            return member.entries(reply)
        self.ids = []
        self.done(ids)
        return entries

    def flush(self) -> None:
        """Send what is held (a thread ending): on a Redis error those entries stay pending, delivered again."""
        if self.ids:
            try:
                self.exchange()
            except redis.RedisError as exc:
                log.warning("could not acknowledge %d deliveries (%s); they stay pending", len(self.ids), exc)
