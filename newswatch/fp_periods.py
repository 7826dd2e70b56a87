"""The reprint index's period hashes within the retention window: this retention's, and those an earlier
retention wrote.

The period length follows the retention (`defaults.fp_period_days`), so after `NEWSWATCH_DEDUPE_RETENTION_DAYS`
changes, new articles go into hashes of another length. The articles indexed before the change are in the
old hashes, in the same layout, and each record carries its day: a lookup that also reads the old hashes
still holding days of the window keeps finding their reprints until those hashes expire (at the end of
their periods plus the old retention), and `newswatch status` keeps counting them. (Before, a changed
retention started an empty index: the next reprint of anything already queued was alerted again.)

The lengths written are recorded in a small set (`keys.fp_lengths`) by the script that starts each period
hash; a crawl reads it once a day (crawler/dedupe.py), `status` once; an index from before that record is
found by one SCAN, which then writes the record.
"""

from __future__ import annotations

from newswatch.defaults import Keys, fp_period_days

DAY = 86400


def _scanned(client, keys: Keys) -> set[int]:
    found = set()
    for key in client.scan_iter(match=keys.fp_periods_pattern, count=1000):
        size = (key.decode() if isinstance(key, bytes) else key).rsplit(":", 2)[-2]
        if size.isdigit():
            found.add(int(size))
    return found


def window(client, keys: Keys, now: float, retention_days: int) -> list[tuple[str, range]]:
    """Every period hash a lookup reads at `now`, with the days of the window each holds: this retention's
    first (today's leading: inserts go there), then those of other lengths that still exist. Writes only to
    the record of lengths: what one SCAN found when the record is missing while period hashes exist (an
    index from before the record), and the removal of a length whose hashes have all expired."""
    current = fp_period_days(retention_days)
    lengths = {int(m) for m in client.smembers(keys.fp_lengths)}
    if not lengths:  # the check-and-insert script records each length as it starts a period (crawler/dedupe_lua.py)
        lengths = _scanned(client, keys)
        if lengths:
            pipe = client.pipeline(transaction=False)
            pipe.sadd(keys.fp_lengths, *lengths)
            pipe.expire(keys.fp_lengths, (retention_days + current) * DAY)
            pipe.execute()
    out = keys.fp_window(now, retention_days)
    others = {size: keys.fp_window(now, retention_days, size) for size in sorted(lengths - {current})}
    if others:
        pipe = client.pipeline(transaction=False)
        for periods in others.values():
            pipe.exists(*[key for key, _ in periods])
        for (size, periods), live in zip(others.items(), pipe.execute(), strict=True):
            if live:
                out += periods
            else:  # every hash of that length has expired: forget it
                client.srem(keys.fp_lengths, size)
    return out
