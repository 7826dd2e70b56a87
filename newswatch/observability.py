"""Sentry: errors, silent failures and cron check-ins, when `SENTRY_DSN` is set; nothing otherwise.

Reads the settings `sentry_dsn` and `sentry_environment` (and, for Crons, the schedule). Every event and
breadcrumb passes `_scrub()` first, so that webhook URLs, secrets and Redis passwords never leave the
machine: in free text they are replaced where they stand, and a frame's local variable that holds one,
whatever its name, is dropped whole (by value: every value from `newswatch.masking.secret_values`).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from newswatch import __version__
from newswatch.defaults import SENTRY_MONITOR_SLUG
from newswatch.masking import FILTERED, secret_values

log = logging.getLogger(__name__)

_SECRET_PATTERNS = (
    re.compile(r"whsec_[A-Za-z0-9+/=]+"),
    re.compile(r"(?<=://)[^/\s]+@"),  # credentials in URLs (up to the last @ before the path)
    re.compile(r"(access_token|token|key|sign|secret|password)=([^&\s\"']+)", re.I),
)
# Free text (messages, breadcrumbs) has secrets replaced where they stand; a secret shorter than this is
# too likely to occur by chance in ordinary words, and is left to the URL patterns there.
_MIN_TEXT_SECRET = 4


def _scrub_text(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if len(secret) >= _MIN_TEXT_SECRET:
            text = text.replace(secret, FILTERED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: FILTERED if m.lastindex is None else f"{m.group(1)}={FILTERED}", text)
    return text


def _holds_secret(text: str, secrets: tuple[str, ...]) -> bool:
    if any(secret in text for secret in secrets):
        return True
    if text.endswith("..."):  # cut by the SDK's max_value_length: the cut may fall inside a secret
        head = text[:-3]
        return any(head.endswith(secret[:n]) for secret in secrets for n in range(min(4, len(secret)), len(secret)))
    return False


def _drop_by_value(value, secrets: tuple[str, ...]):
    """A frame's local variables: any value holding a secret, whatever its length or the variable's name,
    is dropped whole (a local may hold a password alone, a URL's userinfo, a repr around it)."""
    if isinstance(value, str):
        return FILTERED if _holds_secret(value, secrets) or _scrub_text(value, ()) != value else value
    if isinstance(value, dict):
        return {k: _drop_by_value(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_drop_by_value(v, secrets) for v in value]
    return value


def _scrub(value, secrets: tuple[str, ...]):
    if isinstance(value, str):
        return _scrub_text(value, secrets)
    if isinstance(value, dict):
        return {k: _drop_by_value(v, secrets) if k == "vars" else _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, secrets) for v in value]
    return value


def init_sentry(settings, component: str) -> bool:
    """Initialise sentry-sdk once per process; False (and nothing sent, ever) when no DSN is set."""
    if not settings.sentry_dsn:
        return False
    # lazy: sentry_sdk takes a noticeable part of a second to import; a process without a DSN never needs it
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration

    secrets = secret_values(settings)

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
        import sentry_sdk  # lazy: see init_sentry

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


class RevisitNotOk(Exception):
    """Raised inside `sentry_sdk.crons.monitor` when a revisit ended badly without raising, so the library
    records the check-in as `error`; CronMonitor.checkin swallows it again."""


@dataclass
class Revisit:
    """What the block under `CronMonitor.checkin()` reports: set `ok` to the run's outcome."""

    ok: bool = False


class CronMonitor:
    """Check-ins for each scheduled run through the SDK's monitor (`sentry_sdk.crons.monitor`):
    `in_progress` when the block starts, then `ok` or `error` (with the duration) when it ends.

    Reads the settings `sentry_dsn`, the schedule (`interval`/`jitter` or `cron` + `timezone`) and
    `run_timeout`. Without a DSN nothing is sent.
    """

    def __init__(self, settings, slug: str = SENTRY_MONITOR_SLUG):
        self.enabled = bool(settings.sentry_dsn)
        self.slug = slug
        self.config = monitor_config(settings)

    @contextmanager
    def checkin(self) -> Iterator[Revisit]:
        revisit = Revisit()
        if not self.enabled:
            yield revisit
            return
        import sentry_sdk.crons  # lazy: see init_sentry

        try:
            with sentry_sdk.crons.monitor(monitor_slug=self.slug, monitor_config=self.config):
                yield revisit
                if not revisit.ok:
                    raise RevisitNotOk
        except RevisitNotOk:
            pass
