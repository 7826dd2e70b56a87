"""Consumer groups on the item stream: creating one, and how far every group has acknowledged.

Both sides of the stream need them: the alert worker creates its groups (`ensure_group`), and trimming the
stream (the crawler's `stream.trim`) keeps every entry some group still needs (`acked_floor`).

A new group starts `lookback` seconds (the worker passes `webhook_max_age`) back in the stream rather than
at its start or its end: items queued just before the worker first started (or while a newly added
endpoint was being configured) are delivered, but a week of retained history is not replayed into a new
chat group.
"""

from __future__ import annotations

import time

import redis

from newswatch import streamids


def ensure_group(client, stream: str, group: str, *, lookback: float) -> bool:
    """Create `group` on `stream` (and the stream) unless it exists; True when it was created now."""
    start_ms = max(0, int((time.time() - lookback) * 1000))
    try:
        client.xgroup_create(stream, group, id=streamids.format_id(start_ms), mkstream=True)
        return True
    except redis.ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise


def acked_floor(client, stream: str) -> str | None:
    """The smallest entry id some group still needs: every entry below it is acknowledged by every group.

    For each group that is its oldest pending entry, or the entry after its last-delivered one when
    nothing is pending. `XTRIM stream MINID <min(floor, retention cut-off)>` then removes only entries
    every group is done with. None when the stream has no group (nobody consumes it: trim by age alone
    is the caller's call); when the stream does not exist, None as well.
    """
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return None
    floor: tuple[int, int] | None = None
    for group in groups:
        name = group["name"]
        candidate = None
        if int(group.get("pending") or 0) > 0:
            summary = client.xpending(stream, name)
            if summary.get("min"):
                candidate = streamids.parse(summary["min"])
        if candidate is None:
            candidate = streamids.parse(streamids.after(group["last-delivered-id"]))
        floor = candidate if floor is None or candidate < floor else floor
    return None if floor is None else streamids.format_id(*floor)
