"""What one endpoint's runner holds in this process: the entries it knows of and the retries waiting.

An entry is *known* from the moment a delivery thread reads it (or the housekeeping thread schedules it)
until its acknowledgement is sent or it is given up: the heartbeat adopts only pending entries nobody here
knows, so an entry in flight is never taken for an orphan. Retries wait in a heap by due time; the delivery
threads take the first due one before reading new entries. One condition guards it all, and wakes the
delivery threads when something is scheduled or the endpoint is enabled again.
"""

from __future__ import annotations

import heapq
import itertools
import threading

Job = tuple[str, "dict | None", bool]  # entry id, its fields (None: deleted from the stream), read new


class Schedule:
    """The known entries and the scheduled retries of one runner; thread-safe."""

    def __init__(self):
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, str, dict | None]] = []
        self._seq = itertools.count()
        self._known: set[str] = set()  # entry ids read, scheduled or in flight in this process
        self._interrupted: dict[str, int] = {}  # entry id -> deliveries in a row cut short by Redis errors

    def clear(self) -> None:
        """Forget everything (a restart after an error begins from what Redis holds, not from memory)."""
        with self._cv:
            self._heap.clear()
            self._known.clear()

    def add(self, entry_id: str, fields: dict | None, due: float) -> None:
        """Schedule an entry for `due` (a time.time(); 0: now) and wake a delivery thread for it."""
        with self._cv:
            self._known.add(entry_id)
            heapq.heappush(self._heap, (due, next(self._seq), entry_id, fields))
            self._cv.notify()

    def know(self, entry_ids) -> None:
        with self._cv:
            self._known.update(entry_ids)

    def unknown(self, entry_ids) -> list[str]:
        with self._cv:
            return [i for i in entry_ids if i not in self._known]

    def forget(self, entry_ids) -> None:
        """Entries acknowledged or given up: no longer ours to hold."""
        with self._cv:
            for entry_id in entry_ids:
                self._known.discard(entry_id)
                self._interrupted.pop(entry_id, None)

    def interrupted(self, entry_id: str) -> int:
        """Count one more delivery of the entry cut short by a Redis error; the streak so far."""
        with self._cv:
            streak = self._interrupted[entry_id] = self._interrupted.get(entry_id, 0) + 1
            return streak

    def take_due(self, now: float, hold: bool, max_scheduled: int, max_wait: float) -> tuple[Job | None, float, bool]:
        """The first retry due at `now` unless `hold` (endpoint disabled); else None, how long until the next
        one is due (at most `max_wait`), and whether reading new entries must pause (held, or too many
        waiting)."""
        with self._cv:
            if self._heap and self._heap[0][0] <= now and not hold:
                _, _, entry_id, fields = heapq.heappop(self._heap)
                return (entry_id, fields, False), 0.0, False
            wait = min(max_wait, self._heap[0][0] - now) if self._heap else max_wait
            return None, wait, hold or len(self._heap) >= max_scheduled

    def wait(self, timeout: float) -> None:
        with self._cv:
            self._cv.wait(timeout=timeout)

    def wake_all(self) -> None:
        with self._cv:
            self._cv.notify_all()
