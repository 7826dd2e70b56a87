"""One delivery attempt of one item to one endpoint: the path the runner and `--replay-dead` share.

`EndpointDelivery.attempt` waits for the endpoint's rate-limit slot, builds the request in the endpoint's
format, sends it and classifies the answer. Whatever raised on the way (an answer nobody foresaw, an item a
format cannot render) is one failed attempt, returned as a `Result`: the caller counts it, so a delivery
can never be retried without its attempt being counted. Only a Redis error (the rate-limit slot) escapes:
that is the caller's bookkeeping failing, not the receiver.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

import orjson

from alerts import formats
from alerts.delivery import Sender, deliver
from alerts.membership import text
from alerts.ratelimit import RateLimiter
from newswatch.errors import DeliveryError, EndpointGone, UnsafeEndpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    delivered: bool = False
    gone: EndpointGone | None = None  # the receiver answered 410: the endpoint is to be disabled
    error: str = ""  # why the attempt failed (no URL or secret in it)
    retry_after: float | None = None
    permanent: bool = False
    interrupted: bool = False  # a stop came while waiting for a rate-limit slot: nothing was sent


DELIVERED = Result(delivered=True)  # one for every success: a frozen dataclass costs ~2 µs to build


def read_item(data: str) -> dict:
    """The item of a stream entry's `data` field, as `json.loads` reads it; ValueError when it is not a JSON
    object (see `read_entry`)."""
    return read_entry(data)[0]


def read_entry(data: str | bytes) -> tuple[dict, str | bytes]:
    """The item of a stream entry's `data` field, and the text to send for it: `data` itself, or for bytes
    that are not UTF-8, their text with the undecodable bytes replaced (as the entry is read as text
    elsewhere, membership.py). ValueError when it is no JSON object. The item is what `json.loads` reads.

    The delivery threads' entries keep `data` as the bytes Redis sent (packed_read.py): orjson reads UTF-8
    bytes directly, and the Standard Webhooks body carries them as they are, where decoding them, orjson
    encoding the text again and the body encoding it once more took three times as long (docs/performance.md,
    section 6, fourth round: `json.loads` took 5-15 µs of a delivery thread's GIL time for a 2.2 kB item).
    Where orjson and `json.loads` differ, `json.loads` decides: orjson refuses what Python's reader accepts
    (NaN, Infinity, numbers beyond a float, escaped lone surrogates, bytes that are not UTF-8) and reads
    integers beyond 64 bits as floats, so an item it refuses, or with a float at its top level that may
    have been such an integer, is read again by `json.loads`. Only top-level values are read from the item
    (the formats' fields; the Standard Webhooks body carries the text as queued).
    """
    try:
        item = orjson.loads(data)
    except orjson.JSONDecodeError:
        decoded = data
        if type(data) is bytes:
            try:
                decoded = data.decode()
            except UnicodeDecodeError:
                data = decoded = text(data)  # read as text elsewhere: the undecodable bytes replaced
        item = json.loads(decoded)  # invalid JSON raises here (a ValueError), as before
    else:
        if type(item) is dict and float in map(type, item.values()) and any(
                type(v) is float and not -_INT64 < v < _INT64 for v in item.values()):
            item = json.loads(text(data))
    if not isinstance(item, dict):
        raise ValueError("not an object")
    return item, data


_INT64 = 2.0 ** 63  # orjson reads integers within 64 bits (signed or not) as ints, larger ones as floats


def mark_gone(client, keys, name: str, exc: Exception) -> None:
    """Record that an endpoint answered 410: its items wait until `newswatch alerts --enable <name>`."""
    record = json.dumps({"since": time.time(), "reason": str(exc)})
    if client.set(keys.disabled(name), record, nx=True):
        log.error("endpoint %r answered %s: disabled; its items are kept, undelivered, until "
                  "`newswatch alerts --enable %s`", name, exc, name)


class EndpointDelivery:
    """What delivering to one endpoint needs whatever the item's source: its format, rate limit and
    sender settings. Reads settings `webhook_timeout` and the endpoint's format, secrets, rate."""

    def __init__(self, client, settings, endpoint):
        self.name = endpoint.name
        self.endpoint = endpoint
        self.fmt = formats.for_endpoint(endpoint)
        rate = self.fmt.rate_per_minute
        self.limiter = RateLimiter(client, settings.keys.rate(self.name), rate) if rate else None
        self.timeout = settings.webhook_timeout

    def sender(self) -> Sender:
        """A connection holder for one thread (senders are not thread-safe)."""
        return Sender(timeout=self.timeout, allow_private=self.endpoint.allow_private)

    def attempt(self, sender: Sender, item: dict, msg_id: str, entry_id: str,
                stop: threading.Event | None = None, item_json: str | bytes | None = None) -> Result:
        """One attempt; `item_json` is the text `item` was read from (`read_entry`), sent as it is."""
        if self.limiter is not None:
            wait = self.limiter.reserve()
            if wait > 0:
                if stop is not None and stop.wait(wait):
                    return Result(interrupted=True)
                if stop is None:
                    time.sleep(wait)
        try:
            request = self.fmt.request(item, msg_id, formats.event_time(entry_id), item_json)
            deliver(sender, self.fmt, request)
        except EndpointGone as exc:
            return Result(gone=exc, error=str(exc))
        except (DeliveryError, UnsafeEndpoint) as exc:
            return Result(error=str(exc), retry_after=getattr(exc, "retry_after", None),
                          permanent=getattr(exc, "permanent", False))
        except Exception as exc:  # noqa: BLE001 - whatever raised, one failed attempt: the caller counts it
            # an answer (or item) the code did not foresee: a bug to fix, but still only one attempt
            log.warning("endpoint %r: unexpected error delivering item %s", self.name, msg_id, exc_info=exc)
            return Result(error=f"{exc.__class__.__name__}: {exc}")
        return DELIVERED
