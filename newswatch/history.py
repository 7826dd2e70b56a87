"""Run history in Redis: one JSON record per revisit, newest first, bounded (`NEWSWATCH_HISTORY_SIZE`).

A record: {"id", "trigger" (manual|schedule|baseline), "started_at", "ended_at" (ISO 8601 UTC),
"duration" (s), "outcome" (ok|empty|failed|timeout|killed|interrupted|deferred), "counts" {…the crawl
summary…}, "error"}; a `deferred` run (the site answered 429/503 and asked for time) also has "deferred"
{until, status, retry_after, wait, refusals, asked} (newswatch/retry_after.py).
Both `newswatch crawl` and the daemon write here; `newswatch status` reads it.
"""

from __future__ import annotations

import json
import logging

import redis

from newswatch.defaults import Keys

log = logging.getLogger(__name__)


class RunHistory:
    def __init__(self, client: redis.Redis, keys: Keys, size: int):
        if size < 1:
            raise ValueError(f"history size must be at least 1, got {size}")
        self.client, self.keys, self.size = client, keys, size

    def record(self, run: dict) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(self.keys.runs, json.dumps(run, ensure_ascii=False, sort_keys=True))
        pipe.ltrim(self.keys.runs, 0, self.size - 1)
        pipe.execute()

    def latest(self, n: int = 10) -> list[dict]:
        out = []
        for raw in self.client.lrange(self.keys.runs, 0, n - 1):
            try:
                out.append(json.loads(raw))
            except ValueError:
                log.warning("unreadable run record skipped: %r", raw[:80])
        return out
