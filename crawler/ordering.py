"""The order in which a pass's items go to the pipelines: oldest article first, as early as possible.

When an original and its reprint are both new in one pass, the one processed first is queued and the
other is recorded as its reprint. The site's article ids grow over time, so releasing items in id order
makes that the original. An item is released once no older article of the pass can still arrive: every
list page has been read and every older article page has answered or failed. Most items therefore go on
while the pass is still downloading (the spider requests the oldest pages first), instead of all at the end.
"""

from __future__ import annotations

import heapq
import itertools


class OldestFirst:
    def __init__(self):
        self._pending: set[int] = set()
        self._pending_heap: list[int] = []  # with lazy deletion: an id leaves `_pending` first
        self._held: list[tuple[int, int, dict]] = []
        self._seq = itertools.count()
        self.lists_in_flight = 0

    def expect(self, article_id: int) -> None:
        """An article page of this pass was requested."""
        if article_id not in self._pending:
            self._pending.add(article_id)
            heapq.heappush(self._pending_heap, article_id)

    def resolve(self, article_id: int, item: dict | None = None) -> None:
        """The page answered (with an item to hold, or none) or failed for good."""
        self._pending.discard(article_id)
        if item is not None:
            heapq.heappush(self._held, (article_id, next(self._seq), item))

    def ready(self) -> list[dict]:
        """Items no older article can overtake any more, oldest first."""
        if self.lists_in_flight:
            return []
        while self._pending_heap and self._pending_heap[0] not in self._pending:
            heapq.heappop(self._pending_heap)
        floor = self._pending_heap[0] if self._pending_heap else None
        out = []
        while self._held and (floor is None or self._held[0][0] < floor):
            out.append(heapq.heappop(self._held)[2])
        return out

    def drain(self) -> list[dict]:
        """Everything still held, oldest first (the pass has nothing left to download)."""
        out = [entry[2] for entry in sorted(self._held)]
        self._held.clear()
        return out

    def __len__(self) -> int:
        return len(self._held)
