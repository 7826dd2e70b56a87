"""`newswatch status`: what the service did and is about to do, read from Redis.

`collect()` gathers the figures once (the Prometheus endpoint exports the same dict); `status_command`
prints them readably or as JSON. Redis 6.2 has no `lag` in XINFO GROUPS, so a group's lag (entries not yet
delivered to it) is counted here from its last-delivered id with exclusive XRANGE pages, which both 6.2
and 7.x support. Nothing secret is shown: the Redis URL with its password masked, no webhook URL or
secret; leaders are named by host and pid.

`deferral` is the site's request for time still in force (a 429/503 and its Retry-After, kept per origin:
newswatch/retry_after.py), or None.

Reads the settings `key_prefix`, `history_size`, `dedupe_retention_days`, `redis_url`/`data_dir`, `site_url`.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import redis

from newswatch import fp_periods, streamids
from newswatch.connection import redis_session, redis_url
from newswatch.defaults import Keys
from newswatch.history import RunHistory
from newswatch.holders import current_leader
from newswatch.masking import mask
from newswatch.retry_after import RetryAfterRecord, asked_for

RUNS_SHOWN = 10
LAG_PAGE = 500
LAG_LIMIT = 100_000  # beyond this a status call would read too much; the figure is reported as a floor


def _text(value) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def stream_info(client: redis.Redis, key: str) -> dict:
    length = client.xlen(key)
    first = client.xrange(key, count=1)
    last = client.xrevrange(key, count=1)
    return {"key": key, "length": length,
            "first_id": _text(first[0][0]) if first else None,
            "last_id": _text(last[0][0]) if last else None}


def count_after(client: redis.Redis, key: str, after_id: str, stream: dict) -> tuple[int, bool]:
    """Entries with an id greater than `after_id`, and whether the count is exact (False past LAG_LIMIT)."""
    if not stream["length"]:
        return 0, True
    if streamids.parse(after_id) < streamids.parse(stream["first_id"]):
        return stream["length"], True  # everything still in the stream is after it
    if streamids.parse(after_id) >= streamids.parse(stream["last_id"]):
        return 0, True
    count, start = 0, f"({after_id}"
    while count < LAG_LIMIT:
        page = client.xrange(key, min=start, max="+", count=LAG_PAGE)
        count += len(page)
        if len(page) < LAG_PAGE:
            return count, True
        start = f"({_text(page[-1][0])}"
    return count, False


def group_info(client: redis.Redis, keys: Keys, stream: dict) -> list[dict]:
    if not stream["length"] and not client.exists(keys.items):
        return []
    out = []
    for group in client.xinfo_groups(keys.items):
        name = _text(group["name"])
        last_delivered = _text(group["last-delivered-id"]) or "0-0"
        lag, exact = count_after(client, keys.items, last_delivered, stream)
        row = {"name": name, "pending": int(group["pending"]), "lag": lag, "lag_exact": exact,
               "consumers": int(group["consumers"]), "last_delivered_id": last_delivered}
        if name.startswith("alerts:"):
            row["disabled"] = bool(client.exists(keys.disabled(name[len("alerts:"):])))
        out.append(row)
    return out


def fingerprint_count(client: redis.Redis, keys: Keys, retention_days: int, now: float | None = None) -> int:
    """Articles in the dedupe index within its retention window: the per-day counts `c<day>` of the period
    hashes, plus the per-day hashes of earlier versions not yet moved (crawler/dedupe.py: `upgrade`)."""
    now = time.time() if now is None else now
    window = fp_periods.window(client, keys, now, retention_days)  # (hashes of an earlier retention too)
    pipe = client.pipeline(transaction=False)
    for key, days in window:
        pipe.hmget(key, [f"c{day}" for day in days])
    today = int(now // 86400)
    for day in range(today - retention_days, today + 1):
        pipe.hget(keys.fp_bucket(day), "n")
    counts = pipe.execute()
    return (sum(int(n) for per_day in counts[:len(window)] for n in per_day if n)
            + sum(int(n) for n in counts[len(window):] if n))


def collect(client: redis.Redis, settings, runs: int = RUNS_SHOWN) -> dict:
    """Every figure `status` shows, as plain JSON-ready values."""
    keys = settings.keys
    stream = stream_info(client, keys.items)
    dead = client.xlen(keys.dead)
    streak = client.get(keys.failed_streak)
    return {
        "redis": redis_shown(settings),
        "runs": RunHistory(client, keys, settings.history_size).latest(runs),
        "next_run": _text(client.get(keys.next_run)),
        "leader": current_leader(client, keys.leader),
        "failed_streak": int(streak) if streak else 0,
        "deferral": deferral_shown(client, settings),
        "stream": stream,
        "groups": group_info(client, keys, stream),
        "dead_letters": dead,
        "fingerprints": fingerprint_count(client, keys, settings.dedupe_retention_days),
        "seen_urls": client.hlen(keys.seen),
        "collected_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def deferral_shown(client: redis.Redis, settings) -> dict | None:
    """The site's request for time in force: until (ISO 8601 UTC), status, retry_after, wait, refusals."""
    deferral = RetryAfterRecord(client, settings.keys, settings.site_url).holding()
    if deferral is None:
        return None
    shown = deferral.summary(asked=False)
    del shown["asked"]  # a property of one pass, not of the wait
    return shown


def _why(deferral: dict) -> str:
    return f"{deferral.get('status', '?')} ({asked_for(deferral.get('retry_after'))})"


def redis_shown(settings) -> str:
    """The server's URL as status shows it: credentials masked, the embedded one marked as such."""
    if settings.redis_url:
        return mask(settings.redis_url, True, "redis_url")
    return f"{mask(redis_url(settings), True, 'redis_url')} (embedded)"


# --- readable output -----------------------------------------------------------------------------------

def _ago(iso: str | None, now: float) -> str:
    if not iso:
        return ""
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return ""
    delta = when - now
    span = _span(abs(delta))
    return f"in {span}" if delta >= 0 else f"{span} ago"


def _span(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600:02d}h"


_COUNT_LABELS = (("list_pages", "list"), ("fetched", "fetched"), ("new", "new"), ("reprints", "reprints"),
                 ("off_topic", "off topic"), ("errors", "errors"))


def _run_line(run: dict) -> str:
    counts = run.get("counts") or {}
    figures = "  ".join(f"{label} {counts[key]}" for key, label in _COUNT_LABELS if key in counts)
    duration = run.get("duration")
    took = f"{duration:.1f}s" if isinstance(duration, (int, float)) else "-"
    started = (run.get("started_at") or "?")[:19].replace("T", " ")
    if isinstance(run.get("deferred"), dict):
        figures = f"no request before {run['deferred'].get('until', '?')}: it answered {_why(run['deferred'])}"
    line = f"  {started}  {run.get('outcome', '?'):<8} {took:>8}  {run.get('trigger', '-'):<9} {figures}"
    if run.get("error"):
        line += f"\n      error: {str(run['error'])[:200]}"
    return line


def render(figures: dict) -> str:
    now = time.time()
    leader = figures["leader"]
    if leader:
        lead = f"{leader['host']} pid {leader['pid']} ({leader['holder']}; lock expires in {leader['ttl']}s)"
    else:
        lead = "none (no `newswatch run` is scheduling)"
    nxt = figures["next_run"]
    stream = figures["stream"]
    lines = [
        f"redis         {figures['redis']}",
        f"leader        {lead}",
        f"next run      {nxt + '  (' + _ago(nxt, now) + ')' if nxt else 'not scheduled'}",
        f"failed streak {figures['failed_streak']} run(s) in a row",
    ]
    deferral = figures.get("deferral")
    if deferral:
        refusals = deferral["refusals"]
        lines.append(f"deferred      no request to the site before {deferral['until']} ({_ago(deferral['until'], now)}): "
                     f"it answered {_why(deferral)}, {refusals} refusal{'' if refusals == 1 else 's'} in a row")
    lines += [
        f"stream        {stream['key']}: {stream['length']} entries"
        + (f" ({stream['first_id']} .. {stream['last_id']})" if stream["length"] else ""),
    ]
    if figures["groups"]:
        for group in figures["groups"]:
            lag = f"{group['lag']}" + ("" if group["lag_exact"] else "+")
            flag = "  DISABLED (410 Gone)" if group.get("disabled") else ""
            lines.append(f"group         {group['name']}: pending {group['pending']}, not yet delivered {lag}, "
                         f"consumers {group['consumers']}{flag}")
    else:
        lines.append("groups        none (no alert worker or consumer has read the stream yet)")
    fps = figures["fingerprints"]
    lines += [
        f"dead letters  {figures['dead_letters']}",
        f"fingerprints  {fps}",
        f"seen URLs     {figures['seen_urls']}",
        "",
        "last runs (newest first):" if figures["runs"] else "last runs     none yet",
    ]
    lines += [_run_line(run) for run in figures["runs"]]
    return "\n".join(lines)


def status_command(settings, as_json: bool = False) -> int:
    with redis_session(settings) as client:
        figures = collect(client, settings)
    if as_json:
        print(json.dumps(figures, ensure_ascii=False, indent=2))
    else:
        print(render(figures))
    return 0
