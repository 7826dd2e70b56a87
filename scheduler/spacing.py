"""Passes spaced as the site asks: no revisit starts while the site asked for time, and one is scheduled for
the moment that time has passed.

Two things the site asks are kept in Redis by the crawler, per origin:
- the Crawl-delay robots.txt asks of newswatch, and the time the site last answered us while it applied
  (newswatch/robots.py). A site that asks for more time between requests than the revisit interval gets
  its way: with a Crawl-delay D above the interval, passes start about D after the previous pass's last
  request, and an article waits up to D (on average D/2) for the pass that finds it; within a pass, each
  request waits D after the one before (crawler/robots.py).
- the time a 429 or 503 asked for (its Retry-After, or a backoff without one: newswatch/retry_after.py).
  Every pass would end at once, `deferred`, without a request; starting no child at all saves a process
  start per interval for up to a day.

Before a scheduled revisit starts its child, the daemon asks `site_hold()`; if either holds, this revisit is
not started and one is scheduled for the moment the later of them has passed (the regular schedule goes
on, and its revisits that fall inside are skipped the same way). A skipped revisit is the service doing what
the site asked: it checks in `ok` with Sentry (scheduler/daemon.py), so a long wait does not look like
missed runs, and the next run published for `status` is that moment.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import redis

from newswatch.retry_after import RetryAfterRecord, asked_for
from newswatch.robots import RobotsCache

log = logging.getLogger(__name__)

JOB_ID = "revisit-when-the-site-allows"


@dataclass(frozen=True)
class Hold:
    until: float  # epoch seconds: no revisit starts before this
    why: str


def site_hold(client, settings, now: float | None = None) -> Hold | None:
    """Until when, and why, the site asked for no request: its Retry-After or its Crawl-delay, whichever ends
    later; None when neither holds, and when Redis cannot say (the crawl child then checks both itself)."""
    if client is None:
        return None
    now = time.time() if now is None else now
    try:
        deferral = RetryAfterRecord(client, settings.keys, settings.site_url).holding(now)
        delay = RobotsCache(client, settings.keys, settings.site_url).next_request_allowed_in()
    except redis.RedisError:
        return None
    holds = []
    if deferral is not None:
        holds.append(Hold(deferral.until, f"the site answered {deferral.status} ({asked_for(deferral.retry_after)}) "
                                          f"and asked for no request before then"))
    if delay > 0:
        holds.append(Hold(now + delay, "the site's robots.txt Crawl-delay has not passed since our last request"))
    return max(holds, key=lambda hold: hold.until, default=None)


def defer(scheduler, job, hold: Hold, tz) -> None:
    """Run `job` once, at `hold.until` (replacing an earlier such deferral)."""
    when = datetime.fromtimestamp(hold.until, tz)
    earlier = scheduler.get_job(JOB_ID)
    # said once per deferral, not at each skipped revisit; again when the site moved the time
    new = earlier is None or abs((earlier.next_run_time - when).total_seconds()) >= 1
    scheduler.add_job(job, trigger="date", run_date=when, id=JOB_ID, name=JOB_ID, replace_existing=True)
    log.log(logging.INFO if new else logging.DEBUG, "next revisit at %s (in %.1fs): %s",
            datetime.fromtimestamp(hold.until, timezone.utc).isoformat(timespec="seconds"),
            hold.until - time.time(), hold.why)
