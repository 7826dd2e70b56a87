"""The CPU-heavy part of handling an article page, as one pure function that may run in another process.

extract (crawler/extract.py) → topic match (crawler/topic.py) → reprint evidence (crawler/dedupe.py), the
last only for an article that is on topic. The decisions that need Redis — is it a reprint, queue it —
stay in the pipelines of the crawling process.

Why another process: Scrapy runs in one thread, and a pass is CPU-bound on the real work of each page
(parsing, OpenCC conversion, fingerprinting), about as much again as Scrapy's own cost per page. A worker
process puts that work on a second core while the crawler keeps downloading
(`NEWSWATCH_ANALYSIS_PROCESSES`; 0 analyses in the crawling process itself).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from crawler.dedupe import Evidence, evidence
from crawler.extract import ExtractedArticle, extract_article
from crawler.sites import load_profile
from crawler.topic import TopicMatch, load_topic

log = logging.getLogger(__name__)


@dataclass
class Analysis:
    article: ExtractedArticle
    topic: TopicMatch | None  # None when the page has no article text to match
    evidence: Evidence | None  # only for an article on topic: the others never reach the dedupe step


def dedupe_text(title: str, summary: str | None, body: str) -> str:
    """What the reprint detector reads: title, lead, then one body paragraph per line."""
    return "\n".join(part for part in (title, summary or "", body) if part)


@lru_cache(maxsize=4)
def _topic(path: str | None):
    return load_topic(Path(path) if path else None)


def analyse(body: bytes, url: str, topics: str | None, profile: str = "daydaynews") -> Analysis:
    article = extract_article(body, url, load_profile(profile))
    if not article.paragraphs or not article.title:
        return Analysis(article, None, None)
    match = _topic(topics).match(article.title, "\n".join((article.summary or "", article.body)))
    ev = evidence(dedupe_text(article.title, article.summary, article.body)) if match.on_topic else None
    return Analysis(article, match, ev)


def _warm(topics: str | None, parent: int | None = None) -> None:
    """Worker start-up: die with the crawler, then load the profile and topic and build the lookup tables
    once, not on a first page."""
    if parent is not None and sys.platform.startswith("linux"):
        # A crawl killed outright (by the daemon's run timeout, or the kernel when the daemon dies: see
        # scheduler/child.py) runs no clean-up; its worker would wait on the call queue for ever.
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(0)  # the crawler died before the request was in place
    _topic(topics)
    load_profile()
    evidence("美俄會談 warm-up 預熱")


class Analyser:
    """Runs `analyse` in `processes` worker processes; inline when 0.

    The workers start with the spider, so that their start-up (an interpreter, the extraction libraries,
    the OpenCC tables: most of a second) overlaps the crawler's own start and its first list pages. A
    worker that dies (killed, out of memory, a crash in a C extension) fails the pages it held; the pool is
    replaced for the pages after them, up to MAX_RESTARTS times in a pass."""

    MAX_RESTARTS = 3

    def __init__(self, processes: int, topics: Path | None):
        self.processes = processes
        self.topics = str(topics) if topics else None
        self._pool: ProcessPoolExecutor | None = None
        self.restarts = 0

    def start(self) -> None:
        if self.processes and self._pool is None:
            # spawn, not fork: the crawling process runs threads (Twisted, redis-py) that fork would copy
            self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_warm, initargs=(self.topics, os.getpid()))
            for _ in range(self.processes):
                self._pool.submit(int)  # workers are spawned on the first submissions, not with the pool

    async def __call__(self, body: bytes, url: str) -> Analysis:
        if self.processes == 0:
            return analyse(body, url, self.topics)
        self.start()
        pool = self._pool
        try:
            return await asyncio.wrap_future(pool.submit(analyse, body, url, self.topics))
        except BrokenProcessPool:
            self._replace(pool)
            raise

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if self._pool is not broken or self.restarts >= self.MAX_RESTARTS:
            return  # already replaced by another page that was in flight, or out of restarts
        self.restarts += 1
        log.error("the analysis process died; starting a new one (%d/%d this pass)", self.restarts,
                  self.MAX_RESTARTS)
        broken.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        self.start()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
