"""The site's Retry-After kept across passes: after a 429 or 503, no request goes to the site before the
time it asked for, in this pass or the next ones.

Within a Scrapy pass the site's download slot holds its requests (crawler/middlewares.py, for at most
NEWSWATCH_RETRY_AFTER_CAP); but each pass is a new process started every minute, and the poll that opens
it (crawler/poll.py) is a plain HTTP request, so without a record the next pass would ask again whatever
the site said. Both write the record; the daemon starts no pass while it holds (scheduler/spacing.py). The record, per
origin: until when, the status and the Retry-After that asked for it (seconds or an HTTP date), the wait
chosen, and the refusals in a row. A Retry-After is honoured up to RETRY_AFTER_MAX (a day: a date years
ahead is the site's mistake, not a request to stop for years); a 429 or 503 without one waits
RETRY_AFTER_DEFAULT, doubled for each refusal in a row up to RETRY_AFTER_DEFAULT_MAX. The key outlives
`until` by RETRY_AFTER_DEFAULT_MAX, so the count of refusals survives the wait, and any other answer
deletes it. Key: `Keys.retry_after(origin)`. Base layer, so the scheduler and `status` read it too.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import redis

from newswatch.defaults import RETRY_AFTER_DEFAULT, RETRY_AFTER_DEFAULT_MAX, RETRY_AFTER_MAX, Keys
from newswatch.robots import site_origin

REFUSALS = (429, 503)  # the statuses that ask a client to come back later (RFC 9110 10.2.3, RFC 6585 4)


def retry_after_until(value: bytes | str | None, now: float) -> float | None:
    """The moment a Retry-After header names (`now` + delta-seconds, or its HTTP date), None when absent or
    unreadable."""
    if not value:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    if text.isascii() and text.isdigit():  # str.isdigit() alone also accepts "²" and "٣"
        return now + float(text)
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, OverflowError, AttributeError, IndexError):
        return None  # unreadable, or a date beyond what datetime holds: as if absent


def retry_after_seconds(value: bytes | str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None when absent or unreadable."""
    now = time.time() if now is None else now
    until = retry_after_until(value, now)
    return None if until is None else max(0.0, until - now)


def asked_for(retry_after: str | None) -> str:
    """How a refusal asked for time, for log lines and `status`."""
    return f"Retry-After: {retry_after}" if retry_after else "no Retry-After"


@dataclass
class Deferral:
    until: float  # epoch seconds
    status: int
    retry_after: str | None  # the header as the site sent it
    wait: float  # seconds chosen when the site refused
    refusals: int  # in a row

    @property
    def until_text(self) -> str:
        """`until` as the summaries and log lines show it (UTC, ISO 8601)."""
        return datetime.fromtimestamp(self.until, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def summary(self, asked: bool) -> dict:
        """For a pass's summary: `asked` when this pass's own request was refused."""
        return {**asdict(self), "until": self.until_text, "wait": round(self.wait, 1), "asked": asked}


class RetryAfterRecord:
    def __init__(self, client: redis.Redis, keys: Keys, site_url: str):
        self.client = client
        self.key = keys.retry_after(site_origin(site_url))

    def load(self) -> Deferral | None:
        raw = {k.decode(): v.decode("latin-1") for k, v in self.client.hgetall(self.key).items()}
        try:
            return Deferral(until=float(raw["until"]), status=int(raw["status"]),
                            retry_after=raw.get("retry_after") or None, wait=float(raw["wait"]),
                            refusals=int(raw["refusals"]))
        except (KeyError, ValueError):  # none, or written by something else: no wait rather than a guess
            return None

    def holding(self, now: float | None = None) -> Deferral | None:
        """The deferral in force (its `until` not passed yet), or None."""
        deferral = self.load()
        return deferral if deferral is not None and deferral.until > (time.time() if now is None else now) else None

    def refused(self, status: int, retry_after: str | None, now: float | None = None) -> Deferral:
        """The site answered `status` (429 or 503) now: record until when to leave it alone."""
        now = time.time() if now is None else now
        previous = self.load()
        refusals = (previous.refusals if previous is not None else 0) + 1
        until = retry_after_until(retry_after, now)
        if until is None:
            until = now + min(RETRY_AFTER_DEFAULT * 2 ** min(refusals - 1, 32), RETRY_AFTER_DEFAULT_MAX)
        until = min(max(until, now), now + RETRY_AFTER_MAX)
        deferral = Deferral(until=until, status=status, retry_after=retry_after, wait=until - now,
                            refusals=refusals)
        mapping = {"until": repr(deferral.until), "status": str(status), "retry_after": retry_after or "",
                   "wait": repr(deferral.wait), "refusals": str(refusals)}
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.key, mapping=mapping)
        pipe.expireat(self.key, int(deferral.until + RETRY_AFTER_DEFAULT_MAX) + 1)
        pipe.execute()
        return deferral

    def clear(self) -> None:
        """The site answered something else: the refusals in a row are over."""
        self.client.delete(self.key)
