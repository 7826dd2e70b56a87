"""Who holds a lock key: the holder id (`host:pid:…`) that the scheduler's leader lock stores, read back
for `newswatch status` and the metrics."""

from __future__ import annotations

import redis


def current_leader(client: redis.Redis, key: str) -> dict | None:
    """The lock's holder and remaining time, for `newswatch status`; None when nobody leads."""
    pipe = client.pipeline(transaction=True)
    pipe.get(key)
    pipe.pttl(key)
    value, pttl = pipe.execute()
    if value is None:
        return None
    holder = value.decode() if isinstance(value, bytes) else str(value)
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    return {"holder": holder, "host": host, "pid": int(pid) if pid.isdigit() else None,
            "ttl": round(pttl / 1000, 3) if pttl and pttl > 0 else None}
