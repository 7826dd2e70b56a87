"""The cheap poll that starts every revisit: list page 1 of each category asked conditionally with a plain
HTTP client. When every one answers 304 Not Modified the pass is idle and ends there, without Scrapy.

Why: at the default schedule (a pass a minute) nearly every pass is idle, and an idle pass is one
conditional request; a pass is its own process, and starting Scrapy, Twisted and the extraction
libraries for that one request costs about 3 CPU seconds, against well under one for this poll
(docs/performance.md, "Time to alert at the default settings"). The requests the site sees are the same:
the one conditional request, with the same User-Agent and validators as the spider's.

The poll steps aside (and the full pass runs) whenever the pass is not a plain idle revisit: a baseline
or worker pass, the shared frontier, an article page waiting for a retry, a category whose list page has
no stored validators, robots.txt not stored or expired (the full pass refreshes it) or not allowing the
page, a Crawl-delay not yet passed or more than one category under a Crawl-delay (the spider spaces
those), or any answer but 304. The answers the poll did get are handed to the spider, which takes them
instead of asking again (crawler/conditional.py): the site sees list page 1 asked once per pass, and the
validators kept for the next pass are those of the answer the spider read.

A 429 or 503 ends the pass there, deferred: nothing more goes to the site (no Scrapy pass) until its
Retry-After has passed, and the next passes see that in Redis before they ask anything
(newswatch/retry_after.py, read by crawler/run.py).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from crawler.seen import SeenRecord
from crawler.sites import load_profile
from newswatch.retry_after import REFUSALS, Deferral, RetryAfterRecord, asked_for
from newswatch.robots import RobotsCache

log = logging.getLogger(__name__)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect is "not 304": the full pass handles it
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _allowed(cache: RobotsCache, urls: list[str], user_agent: str) -> bool:
    record = cache.load()
    if record is None or not record.fresh():
        return False
    if record.crawl_delay > 0 and (len(urls) > 1 or cache.next_request_allowed_in() > 0):
        return False
    from protego import Protego  # lazy: only a poll that got this far parses robots.txt

    rules = Protego.parse(record.body.decode("utf-8-sig", errors="ignore"))
    return all(rules.can_fetch(url, user_agent) for url in urls)


@dataclass(frozen=True)
class Answer:
    """One HTTP answer the poll got, as the spider's downloader would have: handed over, not asked again."""

    status: int
    headers: dict[str, list[str]]
    body: bytes
    answered_at: float  # time.monotonic(): the site's download slot counts its delay from here

    def header(self, name: str) -> str | None:
        return next((values[0] for key, values in self.headers.items() if key.lower() == name.lower()), None)


@dataclass
class Poll:
    """What the poll found: the counts of an idle pass (every list page 1 answered 304); or the deferral a
    429/503 asked for (the pass ends, nothing else is asked); or neither, and the answers it got
    (URL -> Answer) for the full pass to use."""

    counts: dict | None = None
    answers: dict[str, Answer] = field(default_factory=dict)
    deferral: Deferral | None = None


def _ask(url: str, validators: dict, settings) -> Answer | None:
    """The conditional request for a list page; None when no whole HTTP answer came (refused, timed out,
    DNS, or a body over the size limit: the full pass asks, and reports the failure properly)."""
    headers = {"User-Agent": settings.effective_user_agent}
    if validators.get("etag"):
        headers["If-None-Match"] = validators["etag"]
    if validators.get("last_modified"):
        headers["If-Modified-Since"] = validators["last_modified"]
    try:
        try:
            response = _OPENER.open(urllib.request.Request(url, headers=headers), timeout=settings.download_timeout)
        except urllib.error.HTTPError as exc:  # 304 and every other non-2xx status: an answer all the same
            response = exc
        with response:
            body = response.read(settings.max_download_size + 1)
            status, message = response.status, response.headers
    except (OSError, ValueError) as exc:
        log.debug("poll of %s failed (%s); running the full pass", url, exc)
        return None
    if len(body) > settings.max_download_size:
        return None
    return Answer(status, {name: message.get_all(name) for name in set(message.keys())}, body, time.monotonic())


def poll(settings, client, counters: tuple[str, ...], waits: RetryAfterRecord, refused_before: bool) -> Poll:
    """Ask list page 1 of each category conditionally (see the module's docstring for when it does not).
    `refused_before`: `waits` holds an earlier refusal, whose wait is over; an answer ends the refusals."""
    result = Poll()
    if settings.frontier != "memory":
        return result
    seen = SeenRecord.from_settings(client, settings)
    if seen.retryable(settings.site_url):
        return result
    profile = load_profile("daydaynews")
    urls = [profile.list_url(settings.site_url, category, 1) for category in settings.categories]
    stored = client.hmget(settings.keys.conditional, urls)
    if not all(stored):
        return result
    cache = RobotsCache(client, settings.keys, settings.site_url)
    if not _allowed(cache, urls, settings.effective_user_agent):
        return result
    for url, validators in zip(urls, stored, strict=True):
        answer = _ask(url, json.loads(validators), settings)
        if cache.crawl_delay() > 0:
            cache.note_request()
        if answer is None:
            return result
        if answer.status in REFUSALS:
            result.deferral = deferral = waits.refused(answer.status, answer.header("Retry-After"))
            log.warning("%s answered %d (%s): no request to the site before %s", url, answer.status,
                        asked_for(deferral.retry_after), deferral.until_text)
            result.answers.clear()
            return result
        if refused_before:
            waits.clear()
            refused_before = False
        result.answers[url] = answer
        if answer.status != 304:
            return result
    seen.sweep()  # as the spider does at the start of every pass
    counts = dict.fromkeys(counters, 0)
    counts.update(list_pages=len(urls), not_modified=len(urls), list_links=0, requests=len(urls), bytes=0)
    return Poll(counts=counts)
