"""When to revisit: the APScheduler trigger for the configured interval (+ jitter) or crontab.

Reads the settings `interval`/`jitter` or `cron` + `timezone`.
The crontab itself is read by newswatch/crontab.py (which the settings check uses too).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from apscheduler.triggers.interval import IntervalTrigger

from newswatch.crontab import crontab_trigger


def build_trigger(settings):
    """The trigger of the revisit job: a crontab when `NEWSWATCH_CRON` is set, else the interval."""
    if settings.cron:
        return crontab_trigger(settings.cron, settings.timezone, settings.jitter)
    return IntervalTrigger(seconds=settings.effective_interval, jitter=settings.jitter or None,
                           timezone=ZoneInfo(settings.timezone))


def describe(settings) -> str:
    if settings.cron:
        jitter = f" + up to {settings.jitter}s jitter" if settings.jitter else ""
        return f"cron '{settings.cron}' ({settings.timezone}){jitter}"
    jitter = f" + up to {settings.jitter}s jitter" if settings.jitter else ""
    return f"every {settings.effective_interval}s{jitter}"
