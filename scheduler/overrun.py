"""A revisit that outlasts the schedule's interval: one line at info level per such pass, in newswatch's words.

Why: with one revisit at a time (`max_instances=1`), APScheduler skips each run that falls due while the
previous pass still runs and warns about it each time ('Execution of job "revisit …" skipped: maximum
number of running instances reached'). That is the intended behaviour when a pass is slower than the
interval (a big backlog, a slow site), not a fault: the warning is dropped and the skips are counted and
reported once, when the long pass ends.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

_APSCHEDULER_LOGGER = "apscheduler.scheduler"


class _DropSkipWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in str(record.msg)


class Overruns:
    """Counts the runs skipped while a revisit runs; `report()` after each revisit logs them, if any."""

    def __init__(self, interval_hint: str):
        self.interval_hint = interval_hint
        self.skipped = 0
        self._guard = threading.Lock()
        apscheduler_log = logging.getLogger(_APSCHEDULER_LOGGER)
        if not any(isinstance(f, _DropSkipWarning) for f in apscheduler_log.filters):
            apscheduler_log.addFilter(_DropSkipWarning())

    def attach(self, scheduler) -> None:
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES

        scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES)

    def _skipped(self, event) -> None:
        with self._guard:
            self.skipped += 1

    def report(self) -> None:
        with self._guard:
            skipped, self.skipped = self.skipped, 0
        if skipped:
            log.info("the revisit outlasted the schedule (%s): %d scheduled run(s) skipped while it ran; the next "
                     "revisit runs at the next scheduled time", self.interval_hint, skipped)
