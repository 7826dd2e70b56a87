"""A shared frontier: several crawler processes work on one revisit pass through Redis (scrapy-redis).

Reads the setting `NEWSWATCH_FRONTIER` (`memory`, the default: one process, Scrapy's own scheduler;
`redis`: scrapy-redis's Scheduler and RFPDupeFilter, keys under `Keys.frontier`), and the Scrapy settings
`NEWSWATCH_FRONTIER_ROLE` (`leader` or `worker`) and `NEWSWATCH_FRONTIER_TTL`.

The leader is the ordinary pass (`newswatch crawl`, as the daemon runs it): it empties the frontier of a
previous pass, seeds the list pages and marks the pass open (`frontier:pass`). Workers
(`newswatch crawl --worker`, on this or another machine) seed nothing: they wait for an open pass, take
requests from the shared queue, run the same callbacks and pipelines on what they fetch, and exit when the
pass ends. Any process may fetch any page; the dupefilter (one SADD per request) means no page is queued
twice in a pass, and the seen record and the publish script (atomic in Redis) mean no article is queued
twice in the stream.

What scrapy-redis does not know about, and this module adds: when is the pass over? Each process marks itself busy (`frontier:active:<id>`, with a TTL it renews
    while busy, so a crashed worker cannot hold a pass open) before it pops a request, and idle when its
    engine is idle. The leader ends the pass when the queue is empty and no process is busy; a worker
    leaves when the pass is closed and the queue is empty.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

from scrapy import signals
from scrapy.exceptions import DontCloseSpider, NotConfigured

from newswatch.defaults import Keys
from newswatch.errors import ConfigError

try:
    from scrapy_redis.scheduler import Scheduler as _RedisScheduler
except ImportError:  # only needed with NEWSWATCH_FRONTIER=redis
    _RedisScheduler = None

log = logging.getLogger(__name__)

# What the leader's run record reports for the whole pass: newswatch's counters, requests and bytes
PASS_COUNTERS = ("newswatch/", "downloader/request_count", "downloader/response_bytes")
IDLE_POLL = 0.2       # seconds between looks at the shared queue while this process has nothing to do


def frontier_settings(settings, url: str, role: str) -> dict:
    """The Scrapy settings that switch a pass to the shared frontier (empty for NEWSWATCH_FRONTIER=memory)."""
    if settings.frontier != "redis":
        return {}
    if _RedisScheduler is None:
        raise ConfigError("NEWSWATCH_FRONTIER", "redis needs the scrapy-redis package (pip install scrapy-redis)")
    keys = settings.keys
    return {
        "SCHEDULER": "crawler.frontier.SharedScheduler",
        "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
        "SCHEDULER_QUEUE_KEY": keys.frontier_requests,
        "SCHEDULER_DUPEFILTER_KEY": keys.frontier_dupefilter,
        # No process may flush on close: the others may still use the queue. The leader empties it at start.
        "SCHEDULER_PERSIST": True,
        "SCHEDULER_FLUSH_ON_START": role == "leader",
        "REDIS_URL": url,
        "NEWSWATCH_FRONTIER_ROLE": role,
        # A busy mark outlives the longest request, so a slow download never ends a pass early.
        "NEWSWATCH_FRONTIER_TTL": int(settings.download_timeout * (settings.retry_times + 1)) + 10,
    }


class SharedScheduler(_RedisScheduler or object):
    """scrapy-redis's Scheduler, plus the busy mark of this process."""

    def open(self, spider):
        super().open(spider)
        self.keys = Keys(spider.settings.get("NEWSWATCH_KEY_PREFIX", "newswatch"))
        self.ttl = spider.settings.getint("NEWSWATCH_FRONTIER_TTL", 60)
        self.member = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.busy = False

    def next_request(self):
        # Busy before popping: the leader then never sees "queue empty, nobody busy" while a request is
        # between the queue and this process.
        self.mark_busy()
        return super().next_request()

    def mark_busy(self, renew: bool = False) -> None:
        if not self.busy or renew:
            self.server.set(self.keys.frontier_active(self.member), 1, ex=self.ttl)
            self.busy = True

    def mark_idle(self) -> None:
        if self.busy:
            self.server.delete(self.keys.frontier_active(self.member))
            self.busy = False

    def anyone_busy(self) -> bool:
        return next(self.server.scan_iter(match=self.keys.frontier_active("*"), count=100), None) is not None

    def close(self, reason):
        self.mark_idle()
        return super().close(reason)


class SharedPass:
    """Keeps a process of a shared pass open while the pass needs it (a Scrapy extension).

    Reads NEWSWATCH_FRONTIER_ROLE; not configured without a shared frontier."""

    def __init__(self, crawler, role: str):
        self.crawler, self.role = crawler, role

    @classmethod
    def from_crawler(cls, crawler):
        role = crawler.settings.get("NEWSWATCH_FRONTIER_ROLE")
        if not role:
            raise NotConfigured
        ext = cls(crawler, role)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    @property
    def scheduler(self) -> SharedScheduler:
        return self.crawler.engine._slot.scheduler

    def spider_opened(self, spider):
        from twisted.internet import task

        self.joined = self.role == "leader"
        run_timeout = self.crawler.settings["NEWSWATCH"].run_timeout
        self.deadline = time.monotonic() + run_timeout
        self.added: dict[str, int] = {}  # this process's counters already added to the pass's
        if self.role == "leader":
            self.scheduler.server.delete(self.scheduler.keys.frontier_counts)  # before any worker can join
            self.scheduler.server.set(self.scheduler.keys.frontier_pass, os.getpid(), ex=run_timeout)
        self.renew = task.LoopingCall(self._renew)
        self.renew.start(max(1, self.scheduler.ttl // 3), now=False)

    def _renew(self):
        if self.scheduler.busy:
            self.scheduler.mark_busy(renew=True)

    def spider_idle(self, spider):
        if len(getattr(spider, "order", ())):
            return  # the spider is releasing its items first (its own idle handler keeps it open)
        scheduler, keys = self.scheduler, self.scheduler.keys
        self._add_counts()  # before the idle mark: the leader ends the pass only when everyone's are in
        scheduler.mark_idle()
        if self.role == "leader":
            if len(scheduler.queue) == 0 and not scheduler.anyone_busy():
                scheduler.server.delete(keys.frontier_pass)
                return  # the pass is over
        else:
            open_pass = bool(scheduler.server.exists(keys.frontier_pass))
            self.joined = self.joined or open_pass
            waiting = not self.joined and time.monotonic() < self.deadline  # started between passes
            if not open_pass and not waiting and len(scheduler.queue) == 0:
                return
        self._poll_soon()
        raise DontCloseSpider

    def _add_counts(self) -> None:
        """Add what this process counted since it last went idle to the pass's counters."""
        stats = self.crawler.stats.get_stats()
        counted = {k: v for k, v in stats.items() if type(v) is int and k.startswith(PASS_COUNTERS)}
        delta = {k: v - self.added.get(k, 0) for k, v in counted.items() if v != self.added.get(k, 0)}
        if delta:
            key = self.scheduler.keys.frontier_counts
            pipe = self.scheduler.server.pipeline(transaction=False)
            for name, n in delta.items():
                pipe.hincrby(key, name, n)
            pipe.expire(key, self.crawler.settings["NEWSWATCH"].run_timeout)
            pipe.execute()
            self.added = counted

    def _take_pass_counts(self) -> None:
        """Once, as the leader closes: its counters become the pass's. A worker may have fetched every list
        page, and a leader judging by its own would call the pass failed ("no list page could be fetched")."""
        stats = self.crawler.stats
        for name, n in self.scheduler.server.hgetall(self.scheduler.keys.frontier_counts).items():
            stats.set_value(name if isinstance(name, str) else name.decode(), int(n))

    def _poll_soon(self):
        # Scrapy's engine looks at an idle scheduler only on its 5-second heartbeat; a shared queue may
        # fill at any moment, so ask for a look sooner. (`_slot.nextcall` is the engine's own wake-up.)
        from twisted.internet import reactor

        slot = getattr(self.crawler.engine, "_slot", None)
        if slot is not None and hasattr(slot, "nextcall"):
            reactor.callLater(IDLE_POLL, slot.nextcall.schedule)

    def spider_closed(self, spider, reason):
        if getattr(self, "renew", None) is not None and self.renew.running:
            self.renew.stop()
        if self.role == "leader":
            if reason != "finished":
                self.scheduler.server.delete(self.scheduler.keys.frontier_pass)
            self._add_counts()  # its last own ones (items released after the pass ended), then the pass's
            self._take_pass_counts()
