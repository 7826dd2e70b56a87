"""One revisit pass in the foreground (`newswatch crawl`): run the spider, then report and record the run.

The pass runs in its own process (Scrapy's reactor cannot be restarted); the daemon starts one child per
scheduled revisit. A pass that reached no list page failed (exit 1); one that read list pages but
extracted no article is "empty" and logged at error level, because that is how a site redesign shows up.
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

from crawler.poll import poll
from crawler.progress import COUNTERS
from crawler.stream import trim
from crawler.topic import load_topic
from newswatch.connection import redis_session
from newswatch.errors import CrawlFailed, CrawlInterrupted
from newswatch.history import RunHistory
from newswatch.retry_after import Deferral, RetryAfterRecord, asked_for
from newswatch.shutdown import Shutdown

log = logging.getLogger(__name__)


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def poll_pass(settings, client, ask: bool = True) -> tuple[dict | None, dict]:
    """The summary of a pass that ends before Scrapy starts: deferred (the site answered 429/503 to this
    pass's poll, or to an earlier pass, and the time it asked for has not passed: newswatch/retry_after.py)
    or idle (the poll of list page 1 found nothing new, crawler/poll.py; `ask`: the pass may poll). Else
    None and the poll's answers (URL -> crawler.poll.Answer), which the full pass uses instead of asking."""
    started = time.time()
    waits = RetryAfterRecord(client, settings.keys, settings.site_url)
    earlier = waits.load()
    if earlier is not None and earlier.until > started:
        log.info("no request to the site before %s: it answered %d earlier (%s)", earlier.until_text,
                 earlier.status, asked_for(earlier.retry_after))
        return _deferred(earlier, False, started), {}
    if not ask:
        return None, {}
    result = poll(settings, client, COUNTERS, waits, earlier is not None)
    if result.deferral is not None:
        return _deferred(result.deferral, True, started), {}
    counts = result.counts
    if counts is None:
        return None, result.answers
    ended = time.time()
    outcome, alerts = judge(counts, "finished")
    return {"outcome": outcome, "counts": counts, "alerts": alerts, "baseline": False, "polled": True,
            "started_at": _utc(started), "ended_at": _utc(ended), "duration": round(ended - started, 3),
            "finish_reason": "finished"}, {}


def _deferred(deferral: Deferral, asked: bool, started: float) -> dict:
    counts = dict.fromkeys(COUNTERS, 0)
    counts.update(list_links=0, requests=int(asked), bytes=0)
    ended = time.time()
    return {"outcome": "deferred", "counts": counts, "alerts": [], "deferred": deferral.summary(asked),
            "started_at": _utc(started), "ended_at": _utc(ended), "duration": round(ended - started, 3),
            "finish_reason": "deferred"}


# Python's cyclic GC runs a young collection every 700 net container allocations by default. A pass
# allocates hundreds per page (Scrapy's request, response and async-generator chain, the analysis result)
# and keeps pages alive while they wait for their analysis, so those objects survive young collections,
# are promoted, and set off full collections that walk every live object: the imported libraries, Scrapy,
# Twisted, 100-150 ms each. That was 0.9-1.3 s of the crawler process's 5-6 s of CPU per 2,000-page pass
# (gc callbacks, bench/crawl_overhead.py's replica). With 10,000, most of a page's objects are freed by
# reference counting before a collection looks at them: 0.2 s. Only the young threshold changes, and only
# while a pass runs; nothing is left uncollected.
GC_YOUNG_THRESHOLD = 10_000


def run_pass(settings, *, baseline: bool = False, progress=None, worker: bool = False,
             stop: threading.Event | None = None, answers: dict | None = None) -> dict:
    """Crawl once with Scrapy in this process; returns the summary (outcome, counts, alerts, times).
    `stop` set (a first signal, see crawl_command): Scrapy stops gracefully, finish reason "shutdown".
    `answers`: list pages the poll already asked (crawler/poll.py), answered from there, not asked again."""
    thresholds = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
    try:
        return _run_pass(settings, baseline=baseline, progress=progress, worker=worker, stop=stop, answers=answers)
    finally:
        gc.set_threshold(*thresholds)


def _run_pass(settings, *, baseline: bool, progress, worker: bool, stop: threading.Event | None,
              answers: dict | None) -> dict:
    # lazy: Scrapy and what builds on it take most of a pass's CPU to import; a pass that the poll finds
    # idle (crawler/poll.py) never imports them
    from scrapy.crawler import CrawlerProcess

    from crawler.progress import counts as stats_counts
    from crawler.settings import scrapy_settings
    from crawler.spiders.daydaynews import DaydaynewsSpider

    started = time.time()
    quiet_loggers(settings.log_level)
    process = CrawlerProcess({**scrapy_settings(settings, baseline=baseline, progress=progress, worker=worker),
                              "NEWSWATCH_POLL_ANSWERS": answers or {}})
    crawler = process.create_crawler(DaydaynewsSpider)
    process.crawl(crawler)
    quiet_loggers(settings.log_level, levels=True)
    if stop is not None:
        from twisted.internet import reactor

        # Scrapy's own signal handlers are not installed: the process follows newswatch/shutdown.py's rule
        threading.Thread(target=lambda: stop.wait() and reactor.callFromThread(process.stop),
                         name="crawl-stop", daemon=True).start()
    process.start(install_signal_handlers=stop is None)
    stats = crawler.stats.get_stats()
    counts = stats_counts(crawler.stats)
    counts["list_links"] = int(stats.get("newswatch/list_links", 0))
    counts["requests"] = int(stats.get("downloader/request_count", 0))
    counts["bytes"] = int(stats.get("downloader/response_bytes", 0))
    ended = time.time()
    outcome, alerts = judge(counts, stats.get("finish_reason", "finished"))
    return {"outcome": outcome, "counts": counts, "alerts": alerts, "baseline": baseline,
            "started_at": _utc(started), "ended_at": _utc(ended), "duration": round(ended - started, 3),
            "finish_reason": stats.get("finish_reason")}


_CHATTY = ("scrapy", "twisted", "py.warnings", "trafilatura", "htmldate", "courlan", "filelock", "asyncio",
           "redis.connection")


class _QuietLibraries(logging.Filter):
    """Scrapy and the extraction libraries are chatty; newswatch counts and reports what matters itself.
    A filter on the handlers, because Scrapy resets its loggers' levels when a crawler process starts."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "scrapy.downloadermiddlewares.robotstxt":
            # A robots.txt that cannot be fetched means "allowed"; the page's own failure is reported.
            return record.levelno >= logging.CRITICAL
        if record.name.startswith(_CHATTY):
            return record.levelno >= logging.ERROR
        return True


def quiet_loggers(level: str, levels: bool = False) -> None:
    """With `levels` (after Scrapy has configured its loggers), also raise their levels, so that the
    records of every request are not even created."""
    if level == "DEBUG":
        return
    if levels:
        for name in _CHATTY:
            logging.getLogger(name).setLevel(logging.ERROR)
        logging.getLogger("scrapy.downloadermiddlewares.robotstxt").setLevel(logging.CRITICAL)
    for handler in logging.root.handlers:
        if not any(isinstance(f, _QuietLibraries) for f in handler.filters):
            handler.addFilter(_QuietLibraries())


def judge(counts: dict, finish_reason: str) -> tuple[str, list[str]]:
    """The pass's outcome and the alerts it raises (each also logged at error level by the caller)."""
    alerts = []
    if finish_reason == "shutdown":
        # stopped by a signal (Ctrl-C, the daemon stopping), perhaps before any list page: what it did is
        # recorded, but it is neither a success nor a site failure (and no alert: stopping is not a fault)
        return "interrupted", []
    fresh_lists = counts["list_pages"] - counts["not_modified"]
    if counts["list_pages"] == 0:
        return "failed", ["no list page could be fetched"]
    if fresh_lists > 0 and counts["list_links"] == 0:
        alerts.append(f"{fresh_lists} list page(s) fetched but no article link found: the list selectors "
                      "no longer match (site redesign?)")
    if counts["fetched"] > 0 and counts["no_body"] == counts["fetched"]:
        alerts.append(f"{counts['fetched']} article page(s) fetched but no article extracted: the article "
                      "selectors and the generic extractor found nothing (site redesign?)")
    elif counts["fetched"] >= 3 and counts["generic_extractor"] == counts["fetched"]:
        alerts.append(f"the site profile's selectors matched none of {counts['fetched']} article pages; "
                      "the generic extractor was used for all (site redesign?)")
    if finish_reason not in ("finished", None):
        alerts.append(f"the crawl ended early: {finish_reason}")
    outcome = "empty" if any("no article" in a for a in alerts) else "ok"
    return outcome, alerts


def summary_line(summary: dict) -> str:
    if summary["outcome"] == "deferred":
        d = summary["deferred"]
        why = f"Retry-After: {d['retry_after']}" if d["retry_after"] else f"no Retry-After: backing off {d['wait']:g}s"
        return (f"deferred in {summary['duration']:.1f}s: no request to the site before {d['until']}, as it asked "
                f"when it answered {d['status']} ({why}{'' if d['asked'] else ', in an earlier pass'})")
    c = summary["counts"]
    parts = [f"list pages {c['list_pages']}" + (f" ({c['not_modified']} not modified)" if c["not_modified"] else ""),
             f"fetched {c['fetched']}",
             ("recorded as seen " + str(c["baseline"])) if summary.get("baseline") else f"new {c['new']}",
             f"reprints {c['reprints']}", f"off topic {c['off_topic']}", f"no body {c['no_body']}",
             f"no date {c['no_date']}", f"errors {c['errors']}"]
    extra = [f"{name.replace('_', ' ')} {c[name]}" for name in ("http_errors", "timeouts", "connection_errors",
                                                               "too_large", "given_up", "offsite_blocked",
                                                               "analysis_errors", "analysis_timeouts", "retry_after",
                                                               "generic_extractor") if c.get(name)]
    return (f"{summary['outcome']} in {summary['duration']:.1f}s: " + ", ".join(parts + extra))


class _ProgressLine:
    def __init__(self, stream):
        self.stream = stream
        self.tty = stream.isatty()
        self.last = None

    def __call__(self, counts: dict) -> None:
        line = (f"crawling… list pages {counts['list_pages']}, fetched {counts['fetched']}, new {counts['new']}, "
                f"reprints {counts['reprints']}, off topic {counts['off_topic']}, errors {counts['errors']}")
        if line == self.last:
            return
        self.last = line
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")


def _kill_analysis_processes() -> None:
    # the analysis processes are this process's only multiprocessing children (crawler/analysis_processes.py)
    for child in multiprocessing.active_children():
        child.kill()


def crawl_command(settings, *, baseline: bool = False, as_json: bool = False, quiet: bool = False,
                  worker: bool = False, trigger: str | None = None) -> int:
    load_topic(settings.topics)  # a broken topic file is a configuration error: exit 2 before crawling
    trigger = trigger or ("baseline" if baseline else "manual")
    line = None if quiet else _ProgressLine(sys.stderr)
    # Scrapy deep-copies its settings: hand it a plain function, not the object holding sys.stderr.
    progress = None if line is None else (lambda counts: line(counts))
    with Shutdown(warm_message="stopping the crawl after the pages in flight (send the signal again to force)",
                  cold_message="forced stop: the analysis processes are killed, the embedded Redis this crawl "
                               "started is stopped") as stop, redis_session(settings, shutdown=stop) as client:
        stop.on_cold("kill the analysis processes", _kill_analysis_processes)
        summary, answers = poll_pass(settings, client, ask=not (baseline or worker))
        if summary is None:
            summary = run_pass(settings, baseline=baseline, progress=progress, worker=worker, stop=stop.requested,
                               answers=answers)
        if line:
            line.done()
        if worker:  # the leader judges and records the pass; a worker may well have read no list page
            summary.update(outcome="worker", alerts=[])
        for alert in summary["alerts"]:
            log.error("crawl alert: %s", alert)
        summary.update(id=uuid.uuid4().hex[:12], trigger=trigger, site_url=settings.site_url)
        if not worker:
            RunHistory(client, settings.keys, settings.history_size).record(summary)
        if not baseline and not worker:
            trim(client, settings.keys, settings.stream_retention_days)
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(("baseline " if baseline else "") + "crawl " + summary_line(summary))
    if summary["outcome"] == "deferred" and baseline:
        raise CrawlFailed(f"the baseline did not run: the site at {settings.site_url} asked for no request before "
                          f"{summary['deferred']['until']}; run it again then")
    if summary["outcome"] == "failed":
        raise CrawlFailed(f"the site at {settings.site_url} could not be crawled: {summary['alerts'][0]}")
    if summary["outcome"] == "interrupted":
        raise CrawlInterrupted("the crawl was interrupted by a signal before it finished; recorded as interrupted")
    return 0
