"""Downloader middlewares: keep every request on the site's origin; retry politely, honouring Retry-After.

Reads the settings `NEWSWATCH` (site_url) and `NEWSWATCH_RETRY_AFTER_CAP`.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.exceptions import IgnoreRequest

# one parser for the poll (which must not import Scrapy) and the middleware; tests import it from here
from newswatch.retry_after import retry_after_seconds

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
    """Scrapy's retry, plus: on 429/503 with Retry-After, the whole site waits that long (capped).

    The wait is applied to the download slot, so no other request to the site goes out before it ends.
    """

    def __init__(self, settings):
        super().__init__(settings)
        self.cap = float(settings.getfloat("NEWSWATCH_RETRY_AFTER_CAP", 300.0))
        self.crawler = None

    @classmethod
    def from_crawler(cls, crawler):
        mw = super().from_crawler(crawler)
        mw.crawler = crawler
        return mw

    def process_response(self, request, response, spider=None):
        if response.status in (429, 503):
            wait = retry_after_seconds(response.headers.get(b"Retry-After"))
            if wait is not None:
                wait = min(wait, self.cap)
                self._pause_slot(request, wait)
                self.crawler.stats.inc_value("newswatch/retry_after")
                self.crawler.stats.max_value("newswatch/retry_after_max_seconds", round(wait, 1))
                log.info("%s answered %d: waiting %.1fs before the next request", request.url, response.status, wait)
        if spider is None:
            return super().process_response(request, response)
        return super().process_response(request, response, spider)

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
