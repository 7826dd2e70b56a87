"""The site's robots.txt as kept in Redis between passes, and the Crawl-delay it asks for.

Each revisit is a new process, so without a shared copy every pass would fetch robots.txt again: at one
pass a minute that alone is 60 requests an hour. RFC 9309 (section 2.4) lets a crawler keep robots.txt
for up to 24 hours, and use HTTP caching rules within that. The record keeps the body, its validators
(ETag, Last-Modified, so the refresh after expiry is a conditional request), when it expires, the
Crawl-delay the site asks of newswatch's user agent, and when the site last answered one of our requests
while that delay applied. The crawler writes it (crawler/robots.py); the scheduler reads the delay, so
that passes are spaced at least that far apart (scheduler/spacing.py). Key: `Keys.robots(origin)`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis

from newswatch.defaults import ROBOTS_KEEP_STALE, ROBOTS_MAX_AGE, ROBOTS_MIN_AGE, Keys

_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


def site_origin(url: str) -> str:
    """scheme://host[:port] of a URL: robots.txt belongs to an origin (RFC 9309 section 2.3)."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def lifetime(cache_control: str | None) -> int:
    """How long a fetched robots.txt is used without asking again: 24 h, or less when the site's
    Cache-Control says so, but never under ROBOTS_MIN_AGE (a `max-age=0` would otherwise double the
    requests of every idle pass)."""
    match = _MAX_AGE.search(cache_control or "")
    if not match:
        return ROBOTS_MAX_AGE
    return max(ROBOTS_MIN_AGE, min(ROBOTS_MAX_AGE, int(match.group(1))))


@dataclass
class RobotsRecord:
    body: bytes
    expires_at: float
    etag: str | None = None
    last_modified: str | None = None
    crawl_delay: float = 0.0
    last_request_at: float = 0.0

    def fresh(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.expires_at


class RobotsCache:
    def __init__(self, client: redis.Redis, keys: Keys, site_url: str):
        self.client = client
        self.key = keys.robots(site_origin(site_url))

    def load(self) -> RobotsRecord | None:
        raw = self.client.hgetall(self.key)
        if not raw or b"expires_at" not in raw:
            return None
        text = {k.decode(): v.decode("latin-1") for k, v in raw.items() if k != b"body"}
        try:
            return RobotsRecord(body=raw.get(b"body", b""), expires_at=float(text["expires_at"]),
                                etag=text.get("etag") or None, last_modified=text.get("last_modified") or None,
                                crawl_delay=float(text.get("crawl_delay") or 0),
                                last_request_at=float(text.get("last_request_at") or 0))
        except ValueError:  # written by something else: fetch robots.txt again rather than guess
            return None

    def store(self, record: RobotsRecord) -> None:
        """Write the record; the key outlives the expiry by ROBOTS_KEEP_STALE so that the validators are
        still there for the conditional refresh, and a stale copy can stand in while the site fails."""
        mapping = {"body": record.body, "expires_at": repr(record.expires_at), "etag": record.etag or "",
                   "last_modified": record.last_modified or "", "crawl_delay": repr(record.crawl_delay)}
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.key, mapping=mapping)
        pipe.expireat(self.key, int(record.expires_at + ROBOTS_KEEP_STALE))
        pipe.execute()

    def crawl_delay(self) -> float:
        value = self.client.hget(self.key, "crawl_delay")
        try:
            return float(value or 0)
        except ValueError:
            return 0.0

    def note_request(self, at: float | None = None) -> None:
        """The site answered a request of ours now (recorded only while a Crawl-delay applies)."""
        self.client.hset(self.key, "last_request_at", repr(time.time() if at is None else at))

    def next_request_allowed_in(self, now: float | None = None) -> float:
        """Seconds until the Crawl-delay since our last request to the site has passed (0: now)."""
        values = self.client.hmget(self.key, ["crawl_delay", "last_request_at"])
        try:
            delay, last = (float(v or 0) for v in values)
        except ValueError:
            return 0.0
        if delay <= 0 or last <= 0:
            return 0.0
        return max(0.0, last + delay - (time.time() if now is None else now))
