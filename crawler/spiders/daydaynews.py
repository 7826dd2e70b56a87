"""The revisit spider for 天天要聞: list pages → new article URLs → article pages → extracted items.

Reads the settings `NEWSWATCH` (site_url, categories, max_pages, seen record) and `NEWSWATCH_BASELINE`.

A pass starts at each category's first list page, follows `?page=n` up to `max_pages`, and stops early at a
page whose articles were all seen before. Only article pages not fetched before are requested. List pages
are fetched conditionally (ETag / Last-Modified kept in Redis): an unchanged first page answers 304 and the
pass ends there, at two requests counting robots.txt.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import scrapy
from scrapy import signals
from scrapy.exceptions import (
    CannotResolveHostError,
    DontCloseSpider,
    DownloadCancelledError,
    DownloadTimeoutError,
    IgnoreRequest,
)
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import DNSLookupError, TCPTimedOutError, TimeoutError

from crawler.analyse import Analyser
from crawler.extract import parse_list_page
from crawler.middlewares import OffOriginRequest
from crawler.ordering import OldestFirst
from crawler.seen import SeenRecord
from crawler.sites import load_profile
from newswatch.connection import connect
from newswatch.errors import AnalysisProcessDied, AnalysisTimedOut

log = logging.getLogger(__name__)

# Request priorities (higher goes first), so that pages are fetched oldest first whether the scheduler holds
# a backlog or the engine takes each request as it is yielded. Items are released in id order
# (crawler/ordering.py), and nothing can be released before the list walk ends: list pages first. Then
# pages whose age is unknown or old (a retry from an earlier pass, a recommended link): while unanswered
# they hold back every newer item. Then the articles of list page n at priority n: the oldest page first.
LIST_PRIORITY = 1000
PROMPT_ARTICLE_PRIORITY = 500


class DaydaynewsSpider(scrapy.Spider):
    name = "daydaynews"
    custom_settings: dict = {}

    def __init__(self, settings, client, *, baseline: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.nw = settings
        self.client = client
        self.keys = settings.keys
        self.baseline = baseline
        self.profile = load_profile("daydaynews")
        self.seen = SeenRecord.from_settings(client, settings)
        self.site_url = settings.site_url
        self.validators: dict[str, str] = {}
        self.order = OldestFirst()
        # Canonical URLs this pass already requested or found seen: a recommended link among them needs no
        # Redis lookup (every article page has a few, nearly always the newest, already on list page 1).
        self.known: set[str] = set()
        self.analyser = Analyser(settings.effective_analysis_processes, settings.topics, settings.analysis_timeout)
        self.analyser.start()

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        settings = crawler.settings["NEWSWATCH"]
        client = connect(settings, start_embedded=False)
        spider = cls(settings, client, *args, baseline=crawler.settings.getbool("NEWSWATCH_BASELINE"), **kwargs)
        spider._set_crawler(crawler)
        crawler.signals.connect(spider.closed_client, signal=signals.spider_closed)
        crawler.signals.connect(spider.release_items, signal=signals.spider_idle)
        return spider

    def _count(self, name: str, n: int = 1) -> None:
        self.crawler.stats.inc_value(f"newswatch/{name}", n)

    # -- list pages -------------------------------------------------------------------------------
    async def start(self):
        if self.crawler.settings.get("NEWSWATCH_FRONTIER_ROLE") == "worker":
            return  # a worker of a shared pass (crawler.frontier): the leader seeds it
        self.seen.sweep()
        for category in self.nw.categories:
            yield self._list_request(category, 1)
        # Articles whose fetch failed on an earlier pass are retried whether or not a list page changed.
        for url in self.seen.retryable(self.site_url):
            yield self._article_request(url, priority=PROMPT_ARTICLE_PRIORITY)

    def _list_request(self, category: str, page: int) -> scrapy.Request:
        url = self.profile.list_url(self.site_url, category, page)
        headers = {}
        if page == 1:
            # Only the first page is worth a conditional request: it changes whenever anything is new.
            cached = self.client.hget(self.keys.conditional, url)
            if cached:
                validators = json.loads(cached)
                if validators.get("etag"):
                    headers["If-None-Match"] = validators["etag"]
                if validators.get("last_modified"):
                    headers["If-Modified-Since"] = validators["last_modified"]
        self.order.lists_in_flight += 1
        return scrapy.Request(url, headers=headers, callback=self.parse_list, errback=self.list_failed,
                              cb_kwargs={"category": category, "page": page}, priority=LIST_PRIORITY,
                              meta={"handle_httpstatus_list": [304]}, dont_filter=True)

    def parse_list(self, response, category: str, page: int):
        self.order.lists_in_flight -= 1
        yield from self._list_output(response, category, page)
        yield from self.order.ready()

    def _list_output(self, response, category: str, page: int):
        if response.status == 304:
            self._count("not_modified")
            self._count("list_pages")
            return
        self._count("list_pages")
        listing = parse_list_page(response.body, response.url, self.profile)
        if listing.method != "profile":
            self._count("list_fallback")
        canonical = []
        for url in listing.article_urls:
            c = self.profile.canonical_url(self.site_url, url)
            if c and c not in canonical:
                canonical.append(c)
        self._count("list_links", len(canonical))
        todo = self.seen.unseen(canonical)
        self.known.update(canonical)
        given_up = self.seen.given_up(canonical)
        if given_up:
            self._count("given_up", len(given_up))
        if page == 1:
            self._remember_validators(response)
        if todo and page < self.nw.max_pages:  # a page of seen articles ends the walk: older ones follow
            yield self._list_request(category, page + 1)
        # The page lists newest first; oldest first is the order in which items can be released.
        for url in reversed(todo):
            yield self._article_request(url, priority=page)

    def _remember_validators(self, response) -> None:
        validators = {
            "etag": (response.headers.get(b"ETag") or b"").decode("latin-1") or None,
            "last_modified": (response.headers.get(b"Last-Modified") or b"").decode("latin-1") or None,
        }
        if validators["etag"] or validators["last_modified"]:
            self.validators[response.url] = json.dumps(validators)

    def closed_client(self, spider, reason):
        self.analyser.close()
        # Validators are kept only when the pass finished: after a crash or a kill, the next pass must read
        # the list page again rather than be told "not modified" about articles it never fetched.
        if reason == "finished" and self.validators:
            self.client.hset(self.keys.conditional, mapping=self.validators)
        self.client.close()

    def list_failed(self, failure):
        self.order.lists_in_flight -= 1
        page = failure.request.cb_kwargs.get("page", 1)
        if page > 1 and failure.check(HttpError) and failure.value.response.status == 404:
            pass  # past the last page: the end of the list, not an error
        else:
            self._count_failure(failure)
            self._count("list_errors")
            log.warning("list page failed: %s (%s)", failure.request.url, _reason(failure))
        yield from self.order.ready()

    # -- article pages ----------------------------------------------------------------------------
    def _article_request(self, url: str, depth: int = 0, priority: int = 0) -> scrapy.Request:
        self.known.add(url)
        self.order.expect(int(self.profile.article_ref(url).id))
        return scrapy.Request(url, callback=self.parse_article, errback=self.article_failed,
                              cb_kwargs={"canonical": url, "depth": depth}, priority=priority)

    async def parse_article(self, response, canonical: str, depth: int):
        self._count("fetched")
        ref = self.profile.article_ref(canonical)
        try:
            analysis = await self.analyser(response.body, response.url)
        except AnalysisTimedOut as exc:  # the page's own fault: a failed fetch of it, like a timeout
            self._count("errors")
            self._count("analysis_timeouts")
            for item in self._retry_later(canonical, str(exc)):
                yield item
            return
        except Exception as exc:  # a bug, a broken install or a dead analysis process; not the page's fault
            self._count("errors")
            self._count("analysis_errors")
            # Logged at error level, so it reaches Sentry; a traceback only where it says something.
            traceback = not isinstance(exc, (ImportError, AnalysisProcessDied))
            for item in self._retry_later(canonical, f"analysis failed: {type(exc).__name__}: {exc}",
                                          logging.ERROR, traceback):
                yield item
            return
        article = analysis.article
        if any(method.startswith("generic") for method in article.methods.values()):
            self._count("generic_extractor")
        # Links to newer articles from the recommended block: followed once, never recursively.
        if depth == 0:
            links = [self.profile.canonical_url(self.site_url, u) for u in article.recommended_links]
            fresh = [u for u in dict.fromkeys(links) if u and u != canonical and u not in self.known]
            for url in self.seen.unseen(fresh):
                yield self._article_request(url, depth=1, priority=PROMPT_ARTICLE_PRIORITY)
            self.known.update(fresh)
        if not article.paragraphs or not article.title:
            self._count("no_body")
            log.warning("no article text extracted from %s (methods: %s)", canonical, article.methods)
            self.seen.mark_seen(canonical)  # it answered 2xx: seen, whatever it yielded
            self.order.resolve(int(ref.id))
            for item in self.order.ready():
                yield item
            return
        if not article.published_at:
            self._count("no_date")
            log.warning("%s: no publication time found (%s); published_at is null",
                        canonical, "; ".join(article.warnings) or "no date element")
        item = {
            "id": ref.item_id,
            "url": canonical,
            "source": self.profile.source,
            "title": article.title,
            "published_at": article.published_at,
            "category": article.category or self.profile.category_name(ref.category) or ref.category,
            "summary": article.summary or "",
            "body": article.body,
            "lang": self.profile.lang,
            "views": article.views,
            "images": article.images,
            "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "extraction": dict(article.methods),
            "topic": analysis.topic.explain(),
            # decisions for the pipelines, removed before the item is queued
            "_on_topic": analysis.topic.on_topic,
            "_evidence": analysis.evidence,
        }
        if analysis.topic.on_topic:
            self.order.resolve(int(ref.id), item)
        else:
            # Only the dedupe step depends on the order; an off-topic page just goes on to be marked seen.
            self.order.resolve(int(ref.id))
            yield item
        for item in self.order.ready():
            yield item

    # -- releasing items (crawler/ordering.py) ---------------------------------------------------
    # Whatever is still held when the pass has nothing left to download (a page whose request was
    # dropped before it answered) goes out through one last in-process request. A crash before an item is
    # released loses nothing: its page was not marked seen and is fetched again on the next pass.
    def release_items(self, spider=None):
        if not len(self.order):
            return
        self.crawler.engine.crawl(scrapy.Request("data:,", callback=self._release, dont_filter=True,
                                                 meta={"dont_obey_robotstxt": True}))
        raise DontCloseSpider

    def _release(self, response):
        yield from self.order.drain()

    def article_failed(self, failure):
        url = failure.request.cb_kwargs.get("canonical", failure.request.url)
        self._count_failure(failure)
        yield from self._retry_later(url, _reason(failure))

    def _retry_later(self, url: str, reason: str, level: int = logging.WARNING, exc_info: bool = False):
        """An article page that failed, in download or in analysis: it stays unseen, so later passes try it
        again, up to NEWSWATCH_MAX_FETCH_FAILURES of them; the items it held back are released."""
        failures = self.seen.mark_failed(url)
        log.log(level, "article page failed (%d/%d): %s (%s)", failures, self.nw.max_fetch_failures, url,
                reason, exc_info=exc_info)
        self.order.resolve(int(self.profile.article_ref(url).id))
        return self.order.ready()

    def _count_failure(self, failure) -> None:
        """`errors`, plus the counter naming why, so the run's summary says what went wrong."""
        self._count("errors")
        kind = failure_kind(failure)
        if kind != "offsite_blocked":  # OriginGuardMiddleware counted it when it dropped the request
            self._count(kind)


def failure_kind(failure) -> str:
    """The summary counter for a failed page: http_errors, timeouts, too_large, offsite_blocked or
    connection_errors (refused, reset, cut short, DNS, anything else on the way)."""
    if failure.check(HttpError):
        return "http_errors"
    if failure.check(DownloadTimeoutError, TimeoutError, TCPTimedOutError):
        return "timeouts"
    # Scrapy cancels a download only when its body passes DOWNLOAD_MAXSIZE (declared or while reading).
    if failure.check(DownloadCancelledError):
        return "too_large"
    if failure.check(OffOriginRequest):
        return "offsite_blocked"
    # HttpCompressionMiddleware drops a body whose decompressed size passes DOWNLOAD_MAXSIZE (a gzip bomb)
    # with a plain IgnoreRequest; its message is the only public mark of the reason.
    if failure.check(IgnoreRequest) and "DOWNLOAD_MAXSIZE" in str(failure.value):
        return "too_large"
    return "connection_errors"


def _reason(failure) -> str:
    if failure.check(HttpError):
        return f"HTTP {failure.value.response.status}"
    if failure.check(DNSLookupError, CannotResolveHostError):
        return "DNS lookup failed"
    if failure.check(DownloadTimeoutError, TimeoutError, TCPTimedOutError):
        return "timed out"
    if failure_kind(failure) == "too_large":
        return "over the download size cap (NEWSWATCH_MAX_DOWNLOAD_SIZE)"
    return f"{failure.type.__name__}: {failure.getErrorMessage()}"
