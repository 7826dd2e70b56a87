"""The seen-URL record: which article pages were already fetched, so a revisit fetches only new ones.

A Scrapy extension (`SeenRecord.of(crawler)` for the spider and the pipelines): old entries are swept when
the spider opens, batched marks are flushed when it closes. Reads the Scrapy settings
NEWSWATCH_SEEN_DAYS, NEWSWATCH_MAX_FETCH_FAILURES and NEWSWATCH_KEY_PREFIX, and NEWSWATCH_FRONTIER_ROLE
(a worker of a shared pass leaves the sweep to the leader).

A page that answered 2xx is seen, whatever it yielded; a page that failed is not, and is tried again on
later passes until it has failed `max_fetch_failures` times. Entries expire after `seen_days`: Redis 6.2 has
no per-field expiry, so the hash stores the time each URL was seen and `sweep()` removes old ones.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from newswatch.defaults import Keys

log = logging.getLogger(__name__)

BATCH = 100  # pages per round trip in mark_seen_later


class SeenRecord:
    def __init__(self, client: redis.Redis | None, keys: Keys, *, seen_days: int, max_failures: int):
        if seen_days < 1 or max_failures < 1:
            raise ValueError("seen_days and max_failures must be at least 1")
        self._client, self.keys = client, keys
        self._crawler = None
        self.ttl = seen_days * 86400
        self.max_failures = max_failures
        self._batch: dict[str, str] = {}
        self._batch_lock = threading.Lock()  # the pipelines mark from their own threads

    @classmethod
    def from_settings(cls, client: redis.Redis, settings) -> SeenRecord:
        """Outside a crawl (the poll before one: crawler/poll.py), from newswatch's typed settings."""
        return cls(client, settings.keys, seen_days=settings.seen_days, max_failures=settings.max_fetch_failures)

    @classmethod
    def from_crawler(cls, crawler) -> SeenRecord:
        # lazy: the poll before a pass (crawler/poll.py) uses this record without importing Scrapy at all
        from scrapy import signals

        s = crawler.settings
        record = cls(None, Keys(s.get("NEWSWATCH_KEY_PREFIX", "newswatch")),
                     seen_days=s.getint("NEWSWATCH_SEEN_DAYS"), max_failures=s.getint("NEWSWATCH_MAX_FETCH_FAILURES"))
        record._crawler = crawler  # the client is the crawl's (RedisClient), taken on first use
        if s.get("NEWSWATCH_FRONTIER_ROLE") != "worker":
            crawler.signals.connect(record.sweep, signal=signals.spider_opened)
        crawler.signals.connect(record.flush, signal=signals.spider_closed)
        return record

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            from crawler.redis_client import RedisClient  # lazy: see from_crawler

            self._client = RedisClient.of(self._crawler)
        return self._client

    @staticmethod
    def of(crawler) -> SeenRecord:
        record = crawler.get_extension(SeenRecord)
        if record is None:
            raise RuntimeError("crawler.seen.SeenRecord is not enabled in EXTENSIONS")
        return record

    def unseen(self, urls: list[str], now: float | None = None) -> list[str]:
        """The URLs (canonical) still to fetch: not seen within the retention and not given up on."""
        if not urls:
            return []
        now = time.time() if now is None else now
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(self.keys.seen, urls)
        pipe.hmget(self.keys.failures, urls)
        seen_at, failures = pipe.execute()
        out = []
        for url, at, failed in zip(urls, seen_at, failures, strict=True):
            if at is not None and now - float(at) < self.ttl:
                continue
            if failed is not None and int(failed) >= self.max_failures:
                continue
            out.append(url)
        return out

    def retryable(self, site_url: str) -> list[str]:
        """URLs under `site_url` that failed before and have tries left."""
        out = []
        for url, failed in self.client.hscan_iter(self.keys.failures):
            url = url.decode() if isinstance(url, bytes) else url
            if url.startswith(site_url + "/") and int(failed) < self.max_failures:
                out.append(url)
        return out

    def given_up(self, urls: list[str]) -> list[str]:
        if not urls:
            return []
        failures = self.client.hmget(self.keys.failures, urls)
        return [u for u, f in zip(urls, failures, strict=True) if f is not None and int(f) >= self.max_failures]

    def mark_seen(self, url: str, now: float | None = None) -> None:
        """Record a 2xx page that yielded no item (an item's page is marked by crawler/stream.py's publish)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.seen, url, f"{time.time() if now is None else now:.0f}")
        pipe.hdel(self.keys.failures, url)
        pipe.execute()

    def mark_seen_later(self, url: str, now: float | None = None) -> None:
        """Record a 2xx page whose item was dropped (off topic, a reprint), in a batch: one round trip per
        `BATCH` pages instead of one per page. Losing the batch in a crash only means fetching those pages
        again on the next pass."""
        with self._batch_lock:
            self._batch[url] = f"{time.time() if now is None else now:.0f}"
            full = len(self._batch) >= BATCH
        if full:
            self.flush()

    def flush(self) -> None:
        with self._batch_lock:
            batch, self._batch = self._batch, {}
        if not batch:
            return
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.keys.seen, mapping=batch)
        pipe.hdel(self.keys.failures, *batch)
        pipe.execute()

    def mark_failed(self, url: str) -> int:
        """Count a failed fetch; returns how many times this URL has failed."""
        return int(self.client.hincrby(self.keys.failures, url, 1))

    def count(self) -> int:
        return int(self.client.hlen(self.keys.seen))

    def sweep(self, now: float | None = None, batch: int = 1000) -> int:
        """Forget URLs (and queued item ids) seen longer ago than the retention; returns how many URLs."""
        removed = self._sweep(self.keys.seen, now, batch)
        self._sweep(self.keys.seen_items, now, batch)
        return removed

    def _sweep(self, key: str, now: float | None, batch: int) -> int:
        now = time.time() if now is None else now
        removed = 0
        for_deletion = []
        for field, at in self.client.hscan_iter(key, count=batch):
            try:
                expired = now - float(at) >= self.ttl
            except ValueError:
                expired = True
            if expired:
                for_deletion.append(field)
            if len(for_deletion) >= batch:
                removed += self.client.hdel(key, *for_deletion)
                for_deletion = []
        if for_deletion:
            removed += self.client.hdel(key, *for_deletion)
        return removed
