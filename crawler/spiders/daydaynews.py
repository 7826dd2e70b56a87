"""The revisit spider for 天天要聞: list pages → new article URLs → article pages → items.

A pass starts at each category's first list page (fetched conditionally: crawler/conditional.py), follows
`?page=n` up to `max_pages`, and stops early at a page whose articles were all seen before (crawler/seen.py).
Only article pages not fetched before are requested; each is analysed (crawler/analyse.py, in the analysis
processes when there are any) and, when on topic, becomes an item released oldest first
(crawler/ordering.py) to the pipelines. Reads the Scrapy settings `NEWSWATCH` (site_url, categories,
max_pages, max_fetch_failures), NEWSWATCH_TOPICS and NEWSWATCH_FRONTIER_ROLE.
"""

from __future__ import annotations

import asyncio
import logging
from functools import cached_property

import scrapy
from scrapy import signals
from scrapy.exceptions import DontCloseSpider
from scrapy.spidermiddlewares.httperror import HttpError

from crawler.analyse import analyse
from crawler.analysis_processes import AnalysisProcesses
from crawler.failures import failure_kind, failure_reason
from crawler.items import build_item
from crawler.listing import parse_list_page
from crawler.ordering import OldestFirst
from crawler.seen import SeenRecord
from crawler.sites import load_profile
from newswatch.errors import AnalysisProcessDied, AnalysisTimedOut

log = logging.getLogger(__name__)

# Request priorities (higher goes first), so that pages are fetched oldest first whether the scheduler holds
# a backlog or the engine takes each request as it is yielded. Items are released in id order, and nothing
# can be released before the list walk ends: list pages first. Then pages whose age is unknown or old (a
# retry from an earlier pass, a recommended link): while unanswered they hold back every newer item. Then
# the articles of list page n at priority n: the oldest page first.
LIST_PRIORITY = 1000
PROMPT_ARTICLE_PRIORITY = 500


class DaydaynewsSpider(scrapy.Spider):
    name = "daydaynews"

    def __init__(self, crawler, **kwargs):
        super().__init__(**kwargs)
        self.config = crawler.settings["NEWSWATCH"]
        self.profile = load_profile("daydaynews")
        self.topics = crawler.settings.get("NEWSWATCH_TOPICS")
        self.order = OldestFirst()
        # Canonical URLs this pass already requested or found seen: a recommended link among them needs no
        # Redis lookup (every article page has a few, nearly always the newest, already on list page 1).
        self.known: set[str] = set()

    # The crawl's components are built after the spider: taken on first use (the pass has begun by then).
    @cached_property
    def seen(self) -> SeenRecord:
        return SeenRecord.of(self.crawler)

    @cached_property
    def processes(self) -> AnalysisProcesses | None:
        return self.crawler.get_extension(AnalysisProcesses)  # None: pages are analysed here

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = cls(crawler, *args, **kwargs)
        spider._set_crawler(crawler)
        crawler.signals.connect(spider.release_held, signal=signals.spider_idle)
        crawler.signals.connect(spider.request_dropped, signal=signals.request_dropped)
        return spider

    def _count(self, name: str, n: int = 1) -> None:
        self.crawler.stats.inc_value(f"newswatch/{name}", n)

    # -- list pages -------------------------------------------------------------------------------
    async def start(self):
        if self.crawler.settings.get("NEWSWATCH_FRONTIER_ROLE") == "worker":
            return  # a worker of a shared pass (crawler.frontier): the leader seeds it
        for category in self.config.categories:
            yield self._list_request(category, 1)
        # Articles whose fetch failed on an earlier pass are retried whether or not a list page changed.
        for url in self.seen.retryable(self.config.site_url):
            yield self._article_request(url, priority=PROMPT_ARTICLE_PRIORITY)

    def _list_request(self, category: str, page: int) -> scrapy.Request:
        self.order.lists_in_flight += 1
        # Only the first page is worth a conditional request: it changes whenever anything is new.
        return scrapy.Request(self.profile.list_url(self.config.site_url, category, page), callback=self.parse_list,
                              errback=self.list_failed, cb_kwargs={"category": category, "page": page},
                              priority=LIST_PRIORITY, meta={"conditional": page == 1}, dont_filter=True)

    def parse_list(self, response, category: str, page: int):
        self.order.lists_in_flight -= 1
        self._count("list_pages")
        if response.status == 304:
            self._count("not_modified")
        else:
            yield from self._list_output(response, category, page)
        yield from self.order.ready()

    def _list_output(self, response, category: str, page: int):
        content_type = (response.headers.get(b"Content-Type") or b"").decode("latin-1") or None
        listing = parse_list_page(response.body, response.url, self.profile, content_type)
        if listing.method != "profile":
            self._count("list_fallback")
        links = (self.profile.canonical_url(self.config.site_url, url) for url in listing.article_urls)
        canonical = [url for url in dict.fromkeys(links) if url]
        self._count("list_links", len(canonical))
        todo = self.seen.unseen(canonical)
        self.known.update(canonical)
        given_up = self.seen.given_up(canonical)
        if given_up:
            self._count("given_up", len(given_up))
        if todo and page < self.config.max_pages:  # a page of seen articles ends the walk: older ones follow
            yield self._list_request(category, page + 1)
        # The page lists newest first; oldest first is the order in which items can be released.
        for url in reversed(todo):
            yield self._article_request(url, priority=page)

    def list_failed(self, failure):
        self.order.lists_in_flight -= 1
        page = failure.request.cb_kwargs.get("page", 1)
        if not (page > 1 and failure.check(HttpError) and failure.value.response.status == 404):
            # (a 404 past the first page is the end of the list, not an error)
            self._count_failure(failure)
            self._count("list_errors")
            log.warning("list page failed: %s (%s)", failure.request.url, failure_reason(failure))
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
        content_type = (response.headers.get(b"Content-Type") or b"").decode("latin-1") or None
        try:
            if self.processes is None:
                analysis = analyse(response.body, response.url, self.topics, content_type)
            else:
                analysis = await self.processes.analyse(response.body, response.url, content_type)
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
        if depth == 0:  # links to newer articles from the recommended block: followed once, never recursively
            for request in self._recommended(article.recommended_links, canonical):
                yield request
        item = None
        if not article.paragraphs or not article.title:
            self._count("no_body")
            log.warning("no article text extracted from %s (methods: %s)", canonical, article.methods)
            self.seen.mark_seen(canonical)  # it answered 2xx: seen, whatever it yielded
        elif not analysis.topic.on_topic:
            self._count("off_topic")
            self.seen.mark_seen_later(canonical)
        else:
            if not analysis.article.published_at:
                self._count("no_date")
                log.warning("%s: no publication time found (%s); published_at is null", canonical,
                            "; ".join(article.warnings) or "no date element")
            item = build_item(canonical, ref, analysis, self.profile)
        self.order.resolve(int(ref.id), item)  # only on-topic items wait for their turn
        for item in self.order.ready():
            yield item

    def _recommended(self, links: list[str], canonical: str):
        canonical_links = (self.profile.canonical_url(self.config.site_url, u) for u in links)
        fresh = [u for u in dict.fromkeys(canonical_links) if u and u != canonical and u not in self.known]
        for url in self.seen.unseen(fresh):
            yield self._article_request(url, depth=1, priority=PROMPT_ARTICLE_PRIORITY)
        self.known.update(fresh)

    def article_failed(self, failure):
        self._count_failure(failure)
        yield from self._retry_later(failure.request.cb_kwargs.get("canonical", failure.request.url),
                                     failure_reason(failure))

    def _retry_later(self, url: str, reason: str, level: int = logging.WARNING, exc_info: bool = False):
        """An article page that failed, in download or in analysis: it stays unseen, so later passes try it
        again, up to NEWSWATCH_MAX_FETCH_FAILURES of them; the items it held back are released."""
        failures = self.seen.mark_failed(url)
        log.log(level, "article page failed (%d/%d): %s (%s)", failures, self.config.max_fetch_failures, url,
                reason, exc_info=exc_info)
        self.order.resolve(int(self.profile.article_ref(url).id))
        return self.order.ready()

    def _count_failure(self, failure) -> None:
        """`errors`, plus the counter naming why, so the run's summary says what went wrong."""
        self._count("errors")
        kind = failure_kind(failure)
        if kind != "offsite_blocked":  # OriginGuardMiddleware counted it when it dropped the request
            self._count(kind)

    # -- items the pass would otherwise hold for ever ---------------------------------------------
    def request_dropped(self, request, spider=None):
        """The scheduler refused an article request (already requested in this pass, here or, with a
        shared frontier, by another process): no answer will resolve it here."""
        canonical = request.cb_kwargs.get("canonical") if request.callback == self.parse_article else None
        if canonical:
            self.order.resolve(int(self.profile.article_ref(canonical).id))

    def release_held(self, spider=None):
        """The pass has nothing left to download, yet items are held (a page that never answered): they
        go to the pipelines now, oldest first. A crash before that loses nothing: their pages were not
        marked seen and are fetched again on the next pass."""
        held = self.order.drain()
        if not held:
            return
        scraper = self.crawler.engine.scraper
        for item in held:
            asyncio.ensure_future(scraper.start_itemproc_async(item, response=None))
        raise DontCloseSpider
