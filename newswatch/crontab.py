"""Crontab expressions as cron means them, turned into an APScheduler trigger: one function both checks
`NEWSWATCH_CRON` at load and builds the revisit job's trigger, so the two cannot disagree.

APScheduler 3.x numbers weekdays from Monday (0 = Monday) even in `CronTrigger.from_crontab`, while
crontab — and Sentry's cron monitor, which gets the same expression — counts from Sunday (0 and 7 =
Sunday). `0 9 * * 1` must mean Monday and `0 9 * * 7` Sunday, so numeric weekdays are rewritten as names
before APScheduler sees them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekday(token: str) -> int:
    if token.isdigit():
        number = int(token)
        if not 0 <= number <= 7:
            raise ValueError(f"weekday {token!r} is out of range 0-7")
        return number % 7
    return _DAY_NAMES.index(token.lower()[:3])


def crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field in APScheduler's terms: explicit day names, Sunday = 0 or 7."""
    if field in ("*", "?"):
        return "*"
    days: list[int] = []
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"bad step in weekday field {field!r}")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            start, _, end = span.partition("-")
            first, last = _weekday(start), _weekday(end)
            if end.isdigit() and int(end) == 7:
                last = 7  # `5-7` is Friday to Sunday
            if last < first:
                raise ValueError(f"weekday range {span!r} runs backwards")
        else:
            first = last = _weekday(span)
        days.extend(day % 7 for day in range(first, last + 1, step))
    return ",".join(_DAY_NAMES[day] for day in sorted(set(days)))


def crontab_trigger(expr: str, timezone: str, jitter: int = 0) -> CronTrigger:
    # lazy: every `newswatch crawl` loads the settings (this module checks NEWSWATCH_CRON), and without a
    # cron expression each pass, idle ones too, imported APScheduler for nothing (~8 ms of CPU)
    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 cron fields, got {len(fields)} in {expr!r}")
    minute, hour, day, month, weekday = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=crontab_weekdays(weekday),
                       timezone=ZoneInfo(timezone), jitter=jitter or None)
