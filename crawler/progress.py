"""A progress line while a pass runs, from the crawl's own stats (a Scrapy extension).

Reads the setting `NEWSWATCH_PROGRESS`: a callable that receives the counts dict every second; unset, the
extension is not configured.
"""

from __future__ import annotations

# `errors` counts every failed page; `http_errors`, `timeouts`, `connection_errors`, `too_large`,
# `offsite_blocked`, `analysis_errors` and `analysis_timeouts` say why (one of them per failed page), so a run's summary names
# the reason.
COUNTERS = ("list_pages", "not_modified", "fetched", "new", "reprints", "off_topic", "no_body", "no_date",
            "generic_extractor", "errors", "http_errors", "timeouts", "connection_errors", "too_large",
            "given_up", "offsite_blocked", "analysis_errors", "analysis_timeouts", "retry_after", "baseline")


def counts(stats) -> dict[str, int]:
    values = stats.get_stats()
    return {name: int(values.get(f"newswatch/{name}", 0)) for name in COUNTERS}


class Progress:
    def __init__(self, stats, callback, interval: float = 1.0):
        self.stats, self.callback, self.interval = stats, callback, interval
        self.loop = None  # a twisted LoopingCall while the spider runs

    @classmethod
    def from_crawler(cls, crawler):
        # lazy: COUNTERS is read by the poll that ends an idle pass without importing Scrapy (crawler/poll.py)
        from scrapy import signals
        from scrapy.exceptions import NotConfigured

        callback = crawler.settings.get("NEWSWATCH_PROGRESS")
        if callback is None:
            raise NotConfigured
        ext = cls(crawler.stats, callback)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self, spider):
        from twisted.internet import task  # lazy: see from_crawler

        self.loop = task.LoopingCall(lambda: self.callback(counts(self.stats)))
        self.loop.start(self.interval, now=False)

    def spider_closed(self, spider, reason):
        if self.loop and self.loop.running:
            self.loop.stop()
