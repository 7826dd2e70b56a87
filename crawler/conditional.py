"""Conditional GET for list pages (a Scrapy downloader middleware): an unchanged first list page answers
304 and costs the site nothing, so an idle revisit is robots.txt plus one small request.

A request opts in with `meta["conditional"] = True` (the spider marks each category's first list page:
it changes whenever anything is new). The middleware sends the validators (ETag, Last-Modified) the last
finished pass kept in Redis (`Keys.conditional`: URL -> JSON), lets a 304 through to the callback, and
keeps the validators of a 200 answer. They are written only when the pass finishes: after a crash or a
kill, the next pass must read the list page again rather than be told "not modified" about articles it
never fetched.

A list page the pass's poll already asked (crawler/poll.py) is answered from the poll's answer, once,
instead of being asked again: the answer goes through the rest of the chain as if just downloaded (its
validators kept as above, a redirect followed, an error retried), and the site's download slot counts its
delay from when the poll's answer came.

Reads the Scrapy settings NEWSWATCH_CONDITIONAL_GET (off: not configured), NEWSWATCH_KEY_PREFIX and
NEWSWATCH_POLL_ANSWERS (URL -> crawler.poll.Answer).
"""

from __future__ import annotations

import json

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.http import Headers
from scrapy.responsetypes import responsetypes

from crawler.redis_client import RedisClient
from newswatch.defaults import Keys


class ConditionalGetMiddleware:
    def __init__(self, crawler, keys: Keys, answers: dict | None = None):
        self.crawler, self.keys = crawler, keys
        self.validators: dict[str, str] = {}  # URL -> JSON, from this pass's 200 answers
        self.answers = dict(answers or {})  # URL -> the poll's answer, each used once

    @classmethod
    def from_crawler(cls, crawler):
        if not crawler.settings.getbool("NEWSWATCH_CONDITIONAL_GET", True):
            raise NotConfigured("NEWSWATCH_CONDITIONAL_GET is off")
        mw = cls(crawler, Keys(crawler.settings.get("NEWSWATCH_KEY_PREFIX", "newswatch")),
                 crawler.settings.get("NEWSWATCH_POLL_ANSWERS"))
        crawler.signals.connect(mw.spider_closed, signal=signals.spider_closed)
        return mw

    def process_request(self, request, spider=None):
        if not request.meta.get("conditional"):
            return None
        cached = RedisClient.of(self.crawler).hget(self.keys.conditional, request.url)
        if cached:
            validators = json.loads(cached)
            if validators.get("etag"):
                request.headers["If-None-Match"] = validators["etag"]
            if validators.get("last_modified"):
                request.headers["If-Modified-Since"] = validators["last_modified"]
        # A 304 is an answer for the callback (which counts it), not an HTTP error.
        request.meta.setdefault("handle_httpstatus_list", [304])
        answer = self.answers.pop(request.url, None)
        return None if answer is None else self._polled(request, answer)

    def _polled(self, request, answer):
        """The poll's answer to this request, as the response the downloader would have returned."""
        _, slot = self.crawler.engine.downloader._get_slot(request)
        slot.lastseen = max(slot.lastseen, answer.answered_at)  # both on the monotonic clock
        headers = Headers(answer.headers)
        cls = responsetypes.from_args(headers=headers, url=request.url, body=answer.body)
        self.crawler.stats.inc_value("newswatch/poll_answers")
        return cls(url=request.url, status=answer.status, headers=headers, body=answer.body, request=request,
                   flags=["poll"])

    def process_response(self, request, response, spider=None):
        if request.meta.get("conditional") and response.status == 200:
            etag = (response.headers.get(b"ETag") or b"").decode("latin-1") or None
            modified = (response.headers.get(b"Last-Modified") or b"").decode("latin-1") or None
            if etag or modified:
                self.validators[request.url] = json.dumps({"etag": etag, "last_modified": modified})
        return response

    def spider_closed(self, spider, reason):
        if reason == "finished" and self.validators:
            RedisClient.of(self.crawler).hset(self.keys.conditional, mapping=self.validators)
