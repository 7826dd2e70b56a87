"""The CPU-heavy part of handling an article page, as one pure function that may run in another process
(crawler/analysis_processes.py runs it there).

extract (crawler/extract.py) → topic match (crawler/topic.py) → reprint evidence (crawler/dedupe.py), the
last only for an article that is on topic, on its text without site furniture (the site profile's). The
decisions that need Redis — is it a reprint, queue it — stay in the pipelines of the crawling process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from crawler.dedupe import Evidence, evidence
from crawler.extract import ExtractedArticle, extract_article
from crawler.sites import load_profile
from crawler.topic import TopicMatch, load_topic


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


def analyse(body: bytes, url: str, topics: str | None, content_type: str | None = None,
            profile: str = "daydaynews") -> Analysis:
    """`content_type`: the response's Content-Type header (its charset decides the decoding)."""
    site = load_profile(profile)
    article = extract_article(body, url, site, content_type)
    if not article.paragraphs or not article.title:
        return Analysis(article, None, None)
    match = _topic(topics).match(article.title, "\n".join((article.summary or "", article.body)))
    if not match.on_topic:
        return Analysis(article, match, None)
    text = site.strip_furniture(dedupe_text(article.title, article.summary, article.body))
    return Analysis(article, match, evidence(text))


def warm(topics: str | None) -> None:
    """Load the profile and topic and build the lookup tables once, not on a first page."""
    _topic(topics)
    load_profile()
    evidence("美俄會談 warm-up 預熱")
