"""Downloader middlewares: keep every request on the site's origin; retry politely, honouring Retry-After.

Reads the settings `NEWSWATCH` (site_url, keys, Redis) and `NEWSWATCH_RETRY_AFTER_CAP`.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

import redis
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.exceptions import IgnoreRequest

from crawler.redis_client import RedisClient

# one parser for the poll (which must not import Scrapy) and the middleware; tests import it from here
from newswatch.defaults import RETRY_AFTER_DEFAULT
from newswatch.retry_after import REFUSALS, Deferral, RetryAfterRecord, asked_for, retry_after_seconds

log = logging.getLogger(__name__)


class OffOriginRequest(IgnoreRequest):
    """Raised for a request (or redirect) that leaves the site's origin; its own class so the spider's
    errback can tell it from other dropped requests (it is counted here, as `offsite_blocked`)."""


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


class OriginGuardMiddleware:
    """Drops any request, redirect included, whose scheme, host or port differ from the site's.

    Scrapy's offsite check compares host names only, so a redirect to another port of the same host, or to
    a private or metadata address, would be followed; this check compares the whole origin.
    """

    def __init__(self, site_url: str, stats):
        self.origin = origin(site_url)
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.settings["NEWSWATCH"].site_url, crawler.stats)

    def process_request(self, request, spider=None):
        if origin(request.url) != self.origin:
            self.stats.inc_value("newswatch/offsite_blocked")
            log.warning("not following %s: it leaves the site's origin", request.url)
            raise OffOriginRequest(f"off-origin request {request.url}")
        return None


class RetryAfterMiddleware(RetryMiddleware):
    """Scrapy's retry, plus: on 429/503 with Retry-After, the whole site waits that long within this pass,
    up to NEWSWATCH_RETRY_AFTER_CAP (a pass must end); and the site's request is kept for the later passes.
    A 429 without Retry-After waits the backoff the record gives it (also capped), never retries at once.

    The wait is applied to the download slot, so no other request to the site goes out before it ends.
    A 429, or a 503 with Retry-After, is recorded as the poll records one (newswatch/retry_after.py): the
    full time it asks for, up to a day (without Retry-After the backoff), so no later pass asks the site
    before it. A 503 without Retry-After is a page's server error here (retried, counted, given up after
    some passes: docs/faults.md), not the site asking for time. The record ends with the site's first
    other answer to a request sent after the refusal (one already on its way says nothing new).
    """

    ASKED_AT = "newswatch_asked_at"  # request.meta: time.monotonic() when the request entered the downloader

    def __init__(self, settings):
        super().__init__(settings)
        self.cap = float(settings.getfloat("NEWSWATCH_RETRY_AFTER_CAP", 300.0))
        self.crawler = None
        self.waits: RetryAfterRecord | None = None
        self.recorded = False   # a record may exist (an earlier pass's, or this pass's refusal)
        self.refused_at = 0.0   # time.monotonic() of this pass's latest refusal

    @classmethod
    def from_crawler(cls, crawler):
        mw = super().from_crawler(crawler)
        mw.crawler = crawler
        settings = crawler.settings["NEWSWATCH"]
        mw.waits = RetryAfterRecord(RedisClient.of(crawler), settings.keys, settings.site_url)
        mw.recorded = mw.waits.load() is not None
        return mw

    def process_request(self, request, spider=None):
        request.meta[self.ASKED_AT] = time.monotonic()  # a retry passes here again: stamped anew
        return None

    def process_response(self, request, response, spider=None):
        if response.status in REFUSALS:
            header = response.headers.get(b"Retry-After")
            retry_after = header.decode("latin-1").strip() if header else None
            wait = retry_after_seconds(retry_after)
            deferral = None
            if response.status == 429 or retry_after:
                deferral = self._record(request.url, response.status, retry_after)
            if wait is None and response.status == 429:
                # No Retry-After: the backoff later passes keep to (120 s, doubling per refusal in a row),
                # not Scrapy's immediate retry into a site that just said it gets too many requests
                wait = deferral.wait if deferral is not None else RETRY_AFTER_DEFAULT
            if wait is not None:
                wait = min(wait, self.cap)
                self._pause_slot(request, wait)
                self.crawler.stats.inc_value("newswatch/retry_after")
                self.crawler.stats.max_value("newswatch/retry_after_max_seconds", round(wait, 1))
                log.info("%s answered %d: waiting %.1fs before the next request", request.url, response.status, wait)
        elif self.recorded and request.meta.get(self.ASKED_AT, 0.0) > self.refused_at:
            self._keep(self.waits.clear)
            self.recorded = False
        if spider is None:
            return super().process_response(request, response)
        return super().process_response(request, response, spider)

    def _record(self, url: str, status: int, retry_after: str | None) -> Deferral | None:
        deferral = self._keep(lambda: self.waits.refused(status, retry_after))
        self.recorded, self.refused_at = True, time.monotonic()
        if deferral is not None:
            log.warning("%s answered %d (%s): no later pass asks the site anything before %s", url, status,
                        asked_for(retry_after), deferral.until_text)
        return deferral

    @staticmethod
    def _keep(call):
        try:
            return call()
        except redis.RedisError as exc:  # the wait within this pass still holds; the pass goes on
            log.warning("could not keep the site's Retry-After in Redis: %s", exc)
            return None

    def _pause_slot(self, request, wait: float) -> None:
        downloader = self.crawler.engine.downloader
        key = request.meta.get("download_slot") or urlsplit(request.url).hostname
        slot = downloader.slots.get(key)
        if slot is None:
            return
        # The downloader waits `delay - (now - lastseen)` before the next request of a slot with a delay:
        # moving `lastseen` into the future holds every request of the slot until `now + wait`.
        # (Scrapy's downloader measures this on the monotonic clock.)
        slot.delay = max(slot.delay, 0.001)
        slot.lastseen = max(slot.lastseen, time.monotonic() + wait)
