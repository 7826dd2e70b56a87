"""Passes spaced by the site's Crawl-delay: a site that asks for more time between requests than the
revisit interval gets its way.

The crawler keeps the Crawl-delay robots.txt asks of newswatch, and the time the site last answered us
while it applied, in Redis (newswatch/robots.py). Before a scheduled revisit starts its child, the daemon
asks how long until that delay has passed since the last request; if it has not, this revisit is not
started and one is scheduled for the moment it has (the regular schedule goes on, and its revisits that
fall inside the delay are skipped the same way). So with a Crawl-delay D above the interval, passes start
about D after the previous pass's last request, and an article waits up to D (on average D/2) for the
pass that finds it; within a pass, each request waits D after the one before (crawler/robots.py).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import redis

from newswatch.robots import RobotsCache

log = logging.getLogger(__name__)

JOB_ID = "revisit-after-crawl-delay"


def crawl_delay_wait(client, settings) -> float:
    """Seconds before the site's Crawl-delay allows our next request (0 when none applies, and when Redis
    cannot say: the crawl child then waits itself, crawler/robots.py)."""
    if client is None:
        return 0.0
    try:
        return RobotsCache(client, settings.keys, settings.site_url).next_request_allowed_in()
    except redis.RedisError:
        return 0.0


def defer(scheduler, job, wait: float, timezone) -> None:
    """Run `job` once, `wait` seconds from now (replacing an earlier such deferral)."""
    first = scheduler.get_job(JOB_ID) is None  # said once per deferral, not at each skipped revisit
    when = datetime.now(timezone) + timedelta(seconds=wait)
    scheduler.add_job(job, trigger="date", run_date=when, id=JOB_ID, name=JOB_ID, replace_existing=True)
    log.log(logging.INFO if first else logging.DEBUG,
            "next revisit in %.1fs: the site's robots.txt Crawl-delay has not passed since our last request", wait)
