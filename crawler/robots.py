"""Downloader middleware: robots.txt obeyed as Scrapy does, but kept in Redis across passes, and its
Crawl-delay honoured.

Replaces Scrapy's RobotsTxtMiddleware (same place in the chain, same `allowed` check and stats). Why:
each pass is a new process, so Scrapy's in-memory parser would fetch robots.txt on every pass — at one
pass a minute, 60 of the site's requests an hour. The copy in Redis (newswatch/robots.py) is used for up
to 24 hours (RFC 9309 section 2.4), then refreshed with a conditional request (a 304 keeps the body).
A robots.txt that answers 4xx means "no rules" and is kept like any other; one that fails (5xx, network)
is not stored: a stale copy stands in if there is one, else the pass goes on as if allowed (as before)
and the next pass asks again.

Crawl-delay: when the site asks newswatch's user agent for one, the site's download slot waits that long
between requests (AutoThrottle may lengthen it, never shorten it; no random jitter below it), and the
first request of a pass waits until that long after the previous pass's last request, which the record
keeps; each delay counts from the site's answer. The scheduler reads the same delay to space the passes
(scheduler/spacing.py), so a pass seldom has to wait.

Reads the settings `NEWSWATCH` (site_url, keys, Redis), `ROBOTSTXT_OBEY`, `USER_AGENT`.
"""

from __future__ import annotations

import logging
import time

from scrapy import signals
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.misc import build_from_crawler
from twisted.internet.defer import Deferred

from crawler.redis_client import RedisClient
from newswatch.robots import RobotsCache, RobotsRecord, lifetime, site_origin

log = logging.getLogger(__name__)


def _header(response, name: bytes) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None


class CachedRobotsTxtMiddleware(RobotsTxtMiddleware):
    def __init__(self, crawler):
        super().__init__(crawler)  # NotConfigured unless ROBOTSTXT_OBEY
        settings = crawler.settings["NEWSWATCH"]
        self.origin = site_origin(settings.site_url)
        self.client = RedisClient.of(crawler)  # the crawl's one client
        self.cache = RobotsCache(self.client, settings.keys, settings.site_url)
        self.crawl_delay = 0.0
        self.paced: set[str] = set()
        self.answered = 0.0  # time.monotonic() of the latest answer from the site (robots.txt included)

    @property
    def useragent(self) -> str:
        return self._robotstxt_useragent or self._default_useragent

    async def process_request(self, request, spider=None):
        if request.meta.get("dont_obey_robotstxt") or not request.url.startswith(("http:", "https:")):
            return None
        parser = await self.robot_parser(request)
        self.process_request_2(parser, request)
        self._pace(request)
        return None

    def process_response(self, request, response, spider=None):
        # The delay is counted from the site's answer, not from when the request left: a slow answer
        # must not shorten the gap the site sees between two requests.
        self.answered = time.monotonic()
        if self.crawl_delay > 0 and site_origin(request.url) == self.origin:
            self.cache.note_request()
            slot = self.crawler.engine.downloader.slots.get(request.meta.get("download_slot"))
            if slot is not None:
                slot.lastseen = max(slot.lastseen, self.answered)
        return response

    # -- the parser: from Redis, or fetched (conditionally when a stale copy has validators) -------------
    async def robot_parser(self, request):
        netloc = urlparse_cached(request).netloc
        if netloc not in self._parsers:
            self._parsers[netloc] = pending = Deferred()
            parser = None
            try:
                parser = await self._load(request)
            finally:  # whatever happened, the requests waiting for it go on
                self._parsers[netloc] = parser
                pending.callback(parser)
        parser = self._parsers[netloc]
        if isinstance(parser, Deferred):
            return await maybe_deferred_to_future(parser)
        return parser

    async def _load(self, request):
        url = urlparse_cached(request)
        if site_origin(request.url) != self.origin:  # never happens: OriginGuardMiddleware drops those
            raise IgnoreRequest(f"{request.url} is not on the site's origin")
        cached = self.cache.load()
        if cached is not None and cached.fresh():
            self._stats.inc_value("newswatch/robots_cached")
            return self._use(cached, request, store=False)
        headers = {}
        if cached is not None and cached.etag:
            headers["If-None-Match"] = cached.etag
        if cached is not None and cached.last_modified:
            headers["If-Modified-Since"] = cached.last_modified
        robots_request = Request(f"{url.scheme}://{url.netloc}/robots.txt", headers=headers,
                                 priority=self.DOWNLOAD_PRIORITY, meta={"dont_obey_robotstxt": True},
                                 callback=NO_CALLBACK)
        self._stats.inc_value("robotstxt/request_count")
        try:
            response = await self._download(robots_request)
        except Exception as exc:  # noqa: BLE001 - any failure to fetch means "no fresh copy", handled below
            if not isinstance(exc, IgnoreRequest):
                self._stats.inc_value(f"robotstxt/exception_count/{type(exc)}")
            log.info("robots.txt could not be fetched (%s: %s)%s", type(exc).__name__, exc,
                     "; using the stored copy" if cached else "")
            return self._use(cached, request, store=False) if cached is not None else None
        self._stats.inc_value("robotstxt/response_count")
        self._stats.inc_value(f"robotstxt/response_status_count/{response.status}")
        record = self._record(response, cached)
        if record is None:  # 5xx: not stored, asked again next pass
            log.info("robots.txt answered %d%s", response.status, "; using the stored copy" if cached else "")
            return self._use(cached, request, store=False) if cached is not None else None
        return self._use(record, request, store=True)

    async def _download(self, request):
        engine = self.crawler.engine
        if hasattr(engine, "download_async"):  # Scrapy >= 2.13
            return await engine.download_async(request)
        return await maybe_deferred_to_future(engine.download(request))

    def _record(self, response, cached: RobotsRecord | None) -> RobotsRecord | None:
        now = time.time()
        expires_at = now + lifetime(_header(response, b"Cache-Control"))
        if response.status == 304 and cached is not None:
            return RobotsRecord(body=cached.body, expires_at=expires_at,
                                etag=_header(response, b"ETag") or cached.etag,
                                last_modified=_header(response, b"Last-Modified") or cached.last_modified)
        if 200 <= response.status < 300:
            return RobotsRecord(body=response.body, expires_at=expires_at, etag=_header(response, b"ETag"),
                                last_modified=_header(response, b"Last-Modified"))
        if 400 <= response.status < 500:  # RFC 9309 2.3.1.3: "unavailable", crawl without rules
            return RobotsRecord(body=b"", expires_at=expires_at)
        return None

    def _use(self, record: RobotsRecord, request, store: bool):
        """The parser of a record, whose Crawl-delay (for our user agent) is noted in the record; `store`
        a new one, or an old one whose delay for us changed (another user agent configured)."""
        parser = build_from_crawler(self._parserimpl, self.crawler, record.body)
        delay = float(getattr(parser, "crawl_delay", lambda ua: None)(self.useragent) or 0.0)
        if store or delay != record.crawl_delay:
            record.crawl_delay = delay
            self.cache.store(record)
        self.crawl_delay = delay
        if delay:
            log.info("robots.txt asks for a Crawl-delay of %gs: requests to the site go that far apart", delay)
        self.crawler.signals.send_catch_log(signal=signals.robots_parsed, robotparser=parser, request=request)
        return parser

    # -- Crawl-delay ---------------------------------------------------------------------------------------
    def _pace(self, request) -> None:
        if self.crawl_delay <= 0:
            return
        request.meta["autothrottle_dont_adjust_delay"] = True
        downloader = self.crawler.engine.downloader
        key, slot = downloader._get_slot(request)  # the slot this request will wait in, created if new
        if key in self.paced:
            return
        self.paced.add(key)
        slot.delay = max(slot.delay, self.crawl_delay)
        if hasattr(slot, "jitter"):  # Scrapy >= 2.19
            slot.jitter = 0.0
        else:
            slot.randomize_delay = False
        # The downloader waits `delay - (now - lastseen)`: a lastseen at our last request to the site (in an
        # earlier pass, on the monotonic clock) makes the first request of this pass keep the delay too.
        wait = self.cache.next_request_allowed_in()
        slot.lastseen = max(slot.lastseen, time.monotonic() + wait - self.crawl_delay, self.answered)
