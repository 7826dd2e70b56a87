"""Sentry: errors, silent failures and cron check-ins, when `SENTRY_DSN` is set; nothing otherwise.

Reads the settings `sentry_dsn` and `sentry_environment`. Every event passes `scrub()` first so that
webhook URLs, secrets and Redis passwords never leave the machine.
"""

from __future__ import annotations

import logging
import re

from newswatch import __version__

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
