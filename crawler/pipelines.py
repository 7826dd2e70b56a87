"""Item pipelines, in the order the data flows: dedupe → publish (the decisions that need Redis; the
CPU-heavy analysis behind them — extraction, topic match, fingerprints — is crawler/analyse.py, and an
off-topic page never becomes an item).

Reads the Scrapy settings NEWSWATCH_KEY_PREFIX, NEWSWATCH_DEDUPE_RETENTION_DAYS, NEWSWATCH_DEDUPE_MIN_CHARS
and NEWSWATCH_BASELINE; the Redis client and the seen record are the crawl's (RedisClient, SeenRecord).

Nothing is lost between the steps: an article page is marked seen in the same Redis transaction that
queues its item (or, for a reprint, once the decision is recorded), so a crash at any point leaves the
page unseen and the next pass processes it again. Re-processing is safe: the fingerprint index recognises
the article's own earlier entry, and the stream gets one entry per article.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from scrapy.exceptions import DropItem

from crawler.dedupe import DedupeIndex
from crawler.redis_client import RedisClient
from crawler.seen import SeenRecord
from crawler.stream import Publisher
from newswatch.defaults import Keys

log = logging.getLogger(__name__)


class _RedisStep:
    """A step that waits on Redis in a thread of its own: the crawler keeps downloading meanwhile, and
    items still reach each step in the order they were released (oldest first)."""

    def __init__(self, crawler):
        self.client = RedisClient.of(crawler)
        self.seen = SeenRecord.of(crawler)
        self.stats = crawler.stats
        self.keys = Keys(crawler.settings.get("NEWSWATCH_KEY_PREFIX", "newswatch"))
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=type(self).__name__)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    async def _off_thread(self, step, item):
        return await asyncio.wrap_future(self._thread.submit(step, item))

    def close_spider(self, spider=None):
        self._thread.shutdown(wait=True)

    def _count(self, name: str) -> None:
        self.stats.inc_value(f"newswatch/{name}")


class DedupePipeline(_RedisStep):
    """Drops near-identical reprints of what was already queued, recording each against its original."""

    def __init__(self, crawler):
        super().__init__(crawler)
        s = crawler.settings
        self.index = DedupeIndex(self.client, self.keys, retention_days=s.getint("NEWSWATCH_DEDUPE_RETENTION_DAYS"),
                                 min_chars=s.getint("NEWSWATCH_DEDUPE_MIN_CHARS"))

    async def process_item(self, item, spider=None):
        return await self._off_thread(self._decide, item)

    def _decide(self, item):
        verdict = self.index.insert_evidence(item["id"], item["url"], item.pop("_evidence"))
        item["simhash"] = verdict.simhash
        # A match with the article's own id is its entry from an earlier, interrupted pass: not a reprint.
        if verdict.duplicate and verdict.original_id != item["id"]:
            self._count("reprints")
            self.seen.mark_seen_later(item["url"])
            log.info("reprint of %s dropped: %s (%s, distance %s)", verdict.original_id, item["url"],
                     verdict.reason, verdict.distance)
            raise DropItem(f"reprint of {verdict.original_id}: {item['url']}")
        return item


class PublishPipeline(_RedisStep):
    """Appends the item to the stream and marks its page seen, atomically and at most once per article."""

    def __init__(self, crawler):
        super().__init__(crawler)
        self.baseline = crawler.settings.getbool("NEWSWATCH_BASELINE")
        self.publisher = Publisher(self.client, self.keys)

    async def process_item(self, item, spider=None):
        return await self._off_thread(self._publish, item)

    def _publish(self, item):
        if not self.publisher.publish(item, queue=not self.baseline):
            self._count("already_queued")
            raise DropItem(f"already queued by another pass: {item['url']}")
        self._count("baseline" if self.baseline else "new")
        return item
