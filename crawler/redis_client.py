"""The crawl's one Redis client, as a Scrapy extension: the spider, the seen record, the conditional-GET
middleware and the pipelines all take it from here (`RedisClient.of(crawler)`), instead of each opening
its own connection.

Reads the Scrapy setting `NEWSWATCH` (newswatch's typed settings: where the server is). The client is
closed when the engine stops, after every other component has finished with it.
"""

from __future__ import annotations

import redis
from scrapy import signals

from newswatch.connection import connect


class RedisClient:
    def __init__(self, client: redis.Redis):
        self.client = client

    @classmethod
    def from_crawler(cls, crawler):
        # The embedded server is `newswatch crawl`'s to start (crawler/run.py): a pass never starts one.
        ext = cls(connect(crawler.settings["NEWSWATCH"], start_embedded=False))
        crawler.signals.connect(ext.close, signal=signals.engine_stopped)
        return ext

    @staticmethod
    def of(crawler) -> redis.Redis:
        """The crawl's client (the extension is always enabled: crawler/settings.py)."""
        ext = crawler.get_extension(RedisClient)
        if ext is None:
            raise RuntimeError("crawler.redis_client.RedisClient is not enabled in EXTENSIONS")
        return ext.client

    def close(self) -> None:
        self.client.close()
