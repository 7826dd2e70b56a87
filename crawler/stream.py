"""The item stream: one XADD per genuinely new item, and trimming that never drops an undelivered one.

Each entry has the fields `data` (the item as JSON), `id` and `url` (plain, for `redis-cli` readers).
The stream is trimmed only of entries older than the retention (`stream_retention_days`) that every
consumer group has read and acknowledged: `XTRIM MINID` up to the oldest entry any group still needs,
never a plain `MAXLEN`, which could delete undelivered items. (Redis 6.2 has `MINID`.)
"""

from __future__ import annotations

import json
import logging
import time

import redis

from newswatch.defaults import Keys
from newswatch.groups import acked_floor

log = logging.getLogger(__name__)


def entry_fields(item: dict) -> dict[str, str]:
    return {"data": json.dumps(item, ensure_ascii=False, sort_keys=True), "id": item["id"], "url": item["url"]}


# Queue the item and mark its page seen as one atomic step, and only if no other process (a racing
# crawler, or this one before a crash) already did: the stream gets exactly one entry per article. Decided
# by the item id: the canonical URL keeps the category slug, and one article reached under two slugs
# (/international/N.html, /world/N.html) is one article; that other URL is then recorded as seen too.
# The URL check stays for items queued before the id record existed.
# KEYS: seen, fetch-failures, items, seen-items. ARGV: url, now, data, item id, queue ('1'/'0').
_PUBLISH_ONCE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
if redis.call('HEXISTS', KEYS[4], ARGV[4]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 0
end
if ARGV[5] == '1' then
  redis.call('XADD', KEYS[3], '*', 'data', ARGV[3], 'id', ARGV[4], 'url', ARGV[1])
end
redis.call('HSET', KEYS[4], ARGV[4], ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""


class Publisher:
    """Appends new items to the stream (see `_PUBLISH_ONCE`). With `queue=False` (a baseline pass) the
    page is only recorded as seen."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self.keys = keys
        self.script = client.register_script(_PUBLISH_ONCE)

    def publish(self, item: dict, *, queue: bool = True, now: float | None = None) -> bool:
        """True when this call queued (or, for a baseline, recorded) the item; False if it already was."""
        fields = entry_fields(item)
        done = self.script(
            keys=[self.keys.seen, self.keys.failures, self.keys.items, self.keys.seen_items],
            args=[item["url"], f"{time.time() if now is None else now:.0f}", fields["data"], item["id"],
                  "1" if queue else "0"])
        return bool(done)


def _older(a: str, b: str) -> str:
    return a if tuple(map(int, a.split("-"))) <= tuple(map(int, b.split("-"))) else b


def trim(client: redis.Redis, keys: Keys, retention_days: float, now: float | None = None) -> int:
    """Drop entries older than the retention that every consumer group has acknowledged; returns how many."""
    now = time.time() if now is None else now
    floor = f"{int((now - retention_days * 86400) * 1000)}-0"
    needed = acked_floor(client, keys.items)  # None: no group reads the stream, age alone decides
    if needed is not None:
        floor = _older(floor, needed)
    removed = client.execute_command("XTRIM", keys.items, "MINID", floor)  # exact: never "~"
    if removed:
        log.info("trimmed %d stream entries older than %s", removed, floor)
    return int(removed)
