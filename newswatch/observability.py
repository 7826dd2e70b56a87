"""Sentry: errors, silent failures and cron check-ins, when `SENTRY_DSN` is set; nothing otherwise.

Reads the settings `sentry_dsn` and `sentry_environment` (and, for Crons, the schedule). Every event passes `scrub()` first so that
webhook URLs, secrets and Redis passwords never leave the machine.
"""

from __future__ import annotations

import logging
import math
import re

from newswatch import __version__
from newswatch.defaults import SENTRY_MONITOR_SLUG

log = logging.getLogger(__name__)

_SECRET_PATTERNS = (
    re.compile(r"whsec_[A-Za-z0-9+/=]+"),
    re.compile(r"(?<=://)[^/@\s]+@"),  # credentials in URLs
    re.compile(r"(access_token|token|key|sign|secret)=([^&\s\"']+)", re.I),
)


def _scrub_text(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[Filtered]")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: "[Filtered]" if m.lastindex is None else f"{m.group(1)}=[Filtered]", text)
    return text


def _scrub(value, secrets):
    if isinstance(value, str):
        return _scrub_text(value, secrets)
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    if isinstance(value, tuple):
        return tuple(_scrub(v, secrets) for v in value)
    return value


def secrets_of(settings) -> tuple[str, ...]:
    out = [settings.redis_url or "", settings.webhook_url or "", settings.webhook_secret or ""]
    for endpoint in settings.endpoints:
        out.append(endpoint.url)
        out.extend(endpoint.secrets)
    return tuple(s for s in out if s)


def init_sentry(settings, component: str) -> bool:
    """Initialise sentry-sdk once per process; False (and nothing sent, ever) when no DSN is set."""
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration

    secrets = secrets_of(settings)

    def before_send(event, hint):
        return _scrub(event, secrets)

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.sentry_environment or "production",
        release=f"newswatch@{__version__}",
        send_default_pii=False,
        before_send=before_send,
        before_breadcrumb=lambda crumb, hint: _scrub(crumb, secrets),
        # error-level log records become events: that is how silent failures reach a person
        integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
        traces_sample_rate=0.0,
    )
    sentry_sdk.set_tag("component", component)
    return True


def flush(timeout: float = 5.0) -> None:
    try:
        import sentry_sdk

        sentry_sdk.flush(timeout=timeout)
    except Exception:  # noqa: BLE001 - flushing must never break shutdown
        log.debug("sentry flush failed", exc_info=True)


# --- Sentry Crons: one check-in pair per scheduled revisit ----------------------------------------------

def _minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))


def monitor_config(settings) -> dict:
    """The `newswatch-revisit` monitor's schedule, matching the daemon's own.

    Sentry's smallest interval unit is the minute, so an interval that is not a whole number of minutes is
    rounded up, and the jitter (plus a minute of slack) becomes the check-in margin: a run that starts
    late by its jitter is not reported as missed.
    """
    config = {
        "checkin_margin": _minutes(settings.jitter) + 1,
        "max_runtime": _minutes(settings.run_timeout),
        "timezone": settings.timezone,
    }
    if settings.cron:
        config["schedule"] = {"type": "crontab", "value": settings.cron}
    else:
        seconds = settings.effective_interval
        if seconds % 86400 == 0:
            config["schedule"] = {"type": "interval", "value": seconds // 86400, "unit": "day"}
        elif seconds % 3600 == 0:
            config["schedule"] = {"type": "interval", "value": seconds // 3600, "unit": "hour"}
        else:
            config["schedule"] = {"type": "interval", "value": _minutes(seconds), "unit": "minute"}
    return config


class CronMonitor:
    """Check-ins for each scheduled run: `in_progress` at the start, then `ok` or `error`.

    Reads the settings `sentry_dsn`, the schedule (`interval`/`jitter` or `cron` + `timezone`) and
    `run_timeout`. Without a DSN every method is a no-op that sends nothing.
    """

    def __init__(self, settings, slug: str = SENTRY_MONITOR_SLUG):
        self.enabled = bool(settings.sentry_dsn)
        self.slug = slug
        self.config = monitor_config(settings)

    def started(self) -> str | None:
        if not self.enabled:
            return None
        from sentry_sdk.crons import capture_checkin

        return capture_checkin(monitor_slug=self.slug, status="in_progress", monitor_config=self.config)

    def finished(self, check_in_id: str | None, ok: bool, duration: float | None = None) -> None:
        if not self.enabled:
            return
        from sentry_sdk.crons import capture_checkin

        # sent even without an in_progress id (e.g. Sentry was unreachable then): the outcome matters most
        capture_checkin(monitor_slug=self.slug, check_in_id=check_in_id, status="ok" if ok else "error",
                        duration=duration, monitor_config=self.config)
