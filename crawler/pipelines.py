"""Item pipelines, in the order the data flows: topic → dedupe → publish (the decisions that need Redis;
the CPU-heavy analysis behind them — extraction, topic match, fingerprints — is crawler/analyse.py).

Reads the settings `NEWSWATCH` (topics, dedupe_retention_days, dedupe_min_chars, stream_retention_days)
and `NEWSWATCH_BASELINE`.

Nothing is lost between the steps: an article page is marked seen in the same Redis transaction that
queues its item (or, for an off-topic page or a reprint, once the decision is recorded), so a crash at
any point leaves the page unseen and the next pass processes it again. Re-processing is safe: the
fingerprint index recognises the article's own earlier entry, and the stream gets one entry per article.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from scrapy.exceptions import DropItem

from crawler.dedupe import DedupeIndex
from crawler.seen import SeenRecord
from crawler.stream import Publisher
from newswatch.connection import connect

log = logging.getLogger(__name__)


class _RedisPipeline:
    def __init__(self, settings, client, stats, baseline: bool = False):
        self.nw, self.client, self.stats, self.baseline = settings, client, stats, baseline
        self.keys = settings.keys
        self.seen = SeenRecord.from_settings(client, settings)
        # One thread per step: the crawler keeps downloading while a step waits on Redis, and items still
        # reach each step in the order they were released (oldest first).
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=type(self).__name__)

    async def _off_thread(self, step, item):
        return await asyncio.wrap_future(self._thread.submit(step, item))

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings["NEWSWATCH"]
        return cls(settings, connect(settings, start_embedded=False), crawler.stats,
                   crawler.settings.getbool("NEWSWATCH_BASELINE"))

    def close_spider(self, spider=None):
        self._thread.shutdown(wait=True)
        self.seen.flush()
        self.client.close()

    def _count(self, name: str) -> None:
        self.stats.inc_value(f"newswatch/{name}")


class TopicPipeline(_RedisPipeline):
    """Keeps what is on topic; an off-topic article is marked seen and dropped.

    The match itself was computed with the extraction (crawler/analyse.py), off the crawling thread."""

    def process_item(self, item, spider=None):
        if not item.pop("_on_topic"):
            item.pop("_evidence", None)
            self._count("off_topic")
            self.seen.mark_seen_later(item["url"])
            raise DropItem(f"off topic ({item['topic']['score']:.2f}): {item['url']}")
        return item


class DedupePipeline(_RedisPipeline):
    """Drops near-identical reprints of what was already queued, recording each against its original."""

    def __init__(self, settings, client, stats, baseline: bool = False):
        super().__init__(settings, client, stats, baseline)
        self.index = DedupeIndex(client, self.keys, retention_days=settings.dedupe_retention_days,
                                 min_chars=settings.dedupe_min_chars)

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


class PublishPipeline(_RedisPipeline):
    """Appends the item to the stream and marks its page seen, atomically and at most once per article."""

    def __init__(self, settings, client, stats, baseline: bool = False):
        super().__init__(settings, client, stats, baseline)
        self.publisher = Publisher(client, self.keys)

    async def process_item(self, item, spider=None):
        return await self._off_thread(self._publish, item)

    def _publish(self, item):
        if not self.publisher.publish(item, queue=not self.baseline):
            self._count("already_queued")
            raise DropItem(f"already queued by another pass: {item['url']}")
        self._count("baseline" if self.baseline else "new")
        return item
