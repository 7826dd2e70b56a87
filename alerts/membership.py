"""One consumer's view of its group on the item stream: what it reads, owns, keeps and takes over.

The Redis side of the runner's bookkeeping, page by page so no call reads an unbounded amount: new entries
(`XREADGROUP >`), the entries this consumer read before a restart (`XREADGROUP 0`), keeping its own
pending entries from looking abandoned (`XCLAIM` with no idle time), and taking over the entries of a
dead consumer (`XAUTOCLAIM`). Entries come back as (entry id, fields), fields None for an entry deleted
from the stream while still pending.
"""

from __future__ import annotations

from collections.abc import Iterator

Entry = tuple[str, "dict[str, str] | None"]

PAGE = 200
TOUCH_PAGE = 500
CLAIM_PAGE, CLAIM_ROUNDS = 100, 10  # bounded work per round of take-overs; the cursor resumes next round


def text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def entry_fields(raw) -> dict[str, str] | None:
    if not raw:
        return None  # an entry deleted from the stream while still pending
    return {text(k): text(v) for k, v in raw.items()}


class Membership:
    def __init__(self, client, stream: str, group: str, consumer: str):
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self._claim_cursor = "0-0"

    def read_new(self, count: int, block_ms: int) -> list[Entry]:
        # BLOCK 0 would wait forever: below a millisecond, do not block at all
        return self.entries(self.queue_read_new(self.client, count, block_ms if block_ms >= 1 else None))

    def queue_read_new(self, pipe, count: int, block_ms: int | None = None):
        """Read up to `count` new entries on `pipe` (in a transaction: without blocking); `entries` reads
        the answer."""
        return pipe.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms)

    @staticmethod
    def entries(reply) -> list[Entry]:
        return [(text(i), entry_fields(raw)) for _, entries in reply or () for i, raw in entries]

    def own_pending(self) -> Iterator[list[Entry]]:
        """Pages of the entries this consumer read and has not acknowledged (before a crash or restart)."""
        last = "0"
        while True:
            reply = self.client.xreadgroup(self.group, self.consumer, {self.stream: last}, count=PAGE)
            entries = reply[0][1] if reply else []
            if not entries:
                return
            page = [(text(i), entry_fields(raw)) for i, raw in entries]
            yield page
            last = page[-1][0]

    def touch_own(self) -> Iterator[list[str]]:
        """Pages of this consumer's pending entry ids, each page's idle time reset as it is read."""
        start = "-"
        while True:
            rows = self.client.xpending_range(self.stream, self.group, min=start, max="+", count=TOUCH_PAGE,
                                              consumername=self.consumer)
            if not rows:
                return
            ids = [text(r["message_id"]) for r in rows]
            self.client.xclaim(self.stream, self.group, self.consumer, min_idle_time=0,
                               message_ids=ids, justid=True)
            yield ids
            if len(rows) < TOUCH_PAGE:
                return
            start = "(" + ids[-1]

    def entry(self, entry_id: str) -> dict[str, str] | None:
        found = self.client.xrange(self.stream, min=entry_id, max=entry_id)
        return entry_fields(found[0][1]) if found else None

    def claim_stale(self, min_idle: float) -> Iterator[list[Entry]]:
        """Pages of entries idle for `min_idle` seconds, now this consumer's (those of dead consumers)."""
        for _ in range(CLAIM_ROUNDS):
            reply = self.client.xautoclaim(self.stream, self.group, self.consumer, min_idle_time=int(min_idle * 1000),
                                           start_id=self._claim_cursor, count=CLAIM_PAGE)
            self._claim_cursor = text(reply[0])
            yield [(text(i), entry_fields(raw)) for i, raw in reply[1] if i is not None]
            if self._claim_cursor == "0-0":
                return

    def queue_owns(self, pipe, entry_id: str):
        """Ask whether this consumer still owns `entry_id` (a non-empty answer: yes) on `pipe`, so the
        question can share a round trip with others."""
        return pipe.xpending_range(self.stream, self.group, min=entry_id, max=entry_id, count=1,
                                   consumername=self.consumer)
