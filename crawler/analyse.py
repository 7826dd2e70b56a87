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
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
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


def _warm(topics: str | None) -> None:
    """Worker start-up: load the profile and topic and build the lookup tables once, not on a first page."""
    _topic(topics)
    load_profile()
    evidence("美俄會談 warm-up 預熱")


class Analyser:
    """Runs `analyse` in `processes` worker processes, started on first use; inline when 0."""

    def __init__(self, processes: int, topics: Path | None):
        self.processes = processes
        self.topics = str(topics) if topics else None
        self._pool: ProcessPoolExecutor | None = None

    async def __call__(self, body: bytes, url: str) -> Analysis:
        if self.processes == 0:
            return analyse(body, url, self.topics)
        if self._pool is None:
            # spawn, not fork: the crawling process runs threads (Twisted, redis-py) that fork would copy
            self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_warm, initargs=(self.topics,))
        return await asyncio.wrap_future(self._pool.submit(analyse, body, url, self.topics))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
