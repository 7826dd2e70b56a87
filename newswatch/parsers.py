"""Setting value parsers: each takes (setting name, raw value) and returns the typed value or raises
`ConfigError` naming the setting and what was expected. A raw value is a string from the environment or
any TOML value from the file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newswatch.crontab import crontab_trigger
from newswatch.errors import ConfigError
from newswatch.masking import mask_url
from newswatch.sentinel_url import parse_sentinel_url

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def boolean(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(name, f"expected a boolean (1/0, true/false, yes/no), got {raw!r}")


def number(kind: type, *, minimum: float | None = None, maximum: float | None = None,
            optional: bool = False) -> Callable[[str, Any], Any]:
    def parse(name: str, raw: Any):
        if optional and (raw is None or str(raw).strip() == ""):
            return None
        if isinstance(raw, bool):
            raise ConfigError(name, f"expected a number, got {raw!r}")
        try:
            value = kind(str(raw).strip()) if not isinstance(raw, (int, float)) else kind(raw)
        except (TypeError, ValueError):
            word = "an integer" if kind is int else "a number"
            raise ConfigError(name, f"expected {word}, got {raw!r}") from None
        if not math.isfinite(value):  # nan passes every comparison below: a nan delay is no delay at all
            raise ConfigError(name, f"expected a finite number, got {raw!r}")
        if minimum is not None and value < minimum:
            raise ConfigError(name, f"expected at least {minimum}, got {raw!r}")
        if maximum is not None and value > maximum:
            raise ConfigError(name, f"expected at most {maximum}, got {raw!r}")
        return value
    return parse


def text(optional: bool = True) -> Callable[[str, Any], Any]:
    def parse(name: str, raw: Any):
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise ConfigError(name, f"expected a string, got {raw!r}")
        value = raw.strip()
        if not value:
            if optional:
                return None
            raise ConfigError(name, "expected a non-empty value")
        return value
    return parse


def path(optional: bool = True) -> Callable[[str, Any], Any]:
    as_text = text(optional)

    def parse(name: str, raw: Any):
        value = as_text(name, raw)
        return Path(value).expanduser() if value else None
    return parse


def site_url(name: str, raw: Any) -> str:
    """An origin: scheme, host and optional port, nothing else (a trailing slash is tolerated)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(name, "expected an origin such as https://daydaynews.cc")
    value = raw.strip()
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(name, f"expected an origin with a valid port, got {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(name, f"expected an http(s) origin such as https://daydaynews.cc, got {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(name, f"expected an origin with no path, query or credentials "
                                f"(scheme://host[:port]), got {value!r}")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def http_url(name: str, raw: Any) -> str | None:
    """An http(s) URL with a host and a valid port (an article to probe, a webhook endpoint)."""
    value = text()(name, raw)
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port out of range or not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(name, "expected an http(s) URL with a host (and a port 1-65535 if any), "
                                f"got {mask_url(value)}")
    return value


def redis_url(name: str, raw: Any) -> str | None:
    """A Redis URL redis-py can connect with, checked whole at load so a typo is one line, not a traceback
    at the first connection. Messages never quote the URL: it may carry the password."""
    value = text()(name, raw)
    if value is None:
        return None
    scheme = value.partition("://")[0].lower() if "://" in value else ""
    if scheme == "redis+sentinel":
        try:
            parse_sentinel_url(value)
        except ValueError as exc:
            raise ConfigError(name, str(exc)) from None
        return value
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(name, f"expected a redis://, rediss://, unix:// or redis+sentinel:// URL, got scheme {scheme!r}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ConfigError(name, f"expected {scheme}://[:password@]host[:port]/db with a host (IPv6 in [brackets]) "
                                "and a port 1-65535") from None
    if scheme == "unix":
        if not parts.path:
            raise ConfigError(name, "expected unix:///path/to/redis.sock")
    else:
        if not parts.hostname:
            raise ConfigError(name, f"expected {scheme}://[:password@]host[:port]/db with a host")
        if port == 0:
            raise ConfigError(name, "expected a port 1-65535")
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ConfigError(name, f"expected the database number as the path (/0 … /15), got /{db}")
    _redis_query(name, parts.query)
    return value


def _redis_query(name: str, query: str) -> None:
    """Only the query options redis-py parses itself; any other is handed to its connection class as a keyword
    argument and fails there (TypeError) at the first command."""
    from redis.connection import URL_QUERY_ARGUMENT_PARSERS  # lazy: redis is heavy for `newswatch --help`

    for key, values in parse_qs(query, keep_blank_values=True).items():
        if key not in URL_QUERY_ARGUMENT_PARSERS:
            raise ConfigError(name, f"unknown URL query option {key!r}; expected one of "
                                    f"{', '.join(sorted(URL_QUERY_ARGUMENT_PARSERS))}")
        try:
            URL_QUERY_ARGUMENT_PARSERS[key](values[0])
        except (TypeError, ValueError):
            raise ConfigError(name, f"URL query option {key!r} has a value of the wrong type") from None


def categories(name: str, raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else str(raw).split(",")
    out = tuple(str(item).strip() for item in items if str(item).strip())
    if not out:
        raise ConfigError(name, "expected at least one category slug, e.g. international")
    for slug in out:
        if not re.fullmatch(r"[a-z0-9_-]+", slug):
            raise ConfigError(name, f"expected category slugs like 'international', got {slug!r}")
    return out


def choice(options: tuple[str, ...]) -> Callable[[str, Any], str]:
    def parse(name: str, raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in options:
            raise ConfigError(name, f"expected one of {', '.join(options)}, got {raw!r}")
        return value
    return parse


def timezone(name: str, raw: Any) -> str:
    value = str(raw).strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(name, f"expected an IANA time zone such as Asia/Shanghai, got {raw!r}") from None
    return value


def cron(name: str, raw: Any) -> str | None:
    value = text()(name, raw)
    if value is None:
        return None
    try:
        trigger = crontab_trigger(value, "UTC")  # the function that builds the revisit job's trigger
    except (ValueError, TypeError) as exc:
        raise ConfigError(name, f"expected a 5-field cron expression such as '*/10 * * * *', "
                                f"got {value!r} ({exc})") from None
    # `0 0 31 2 *` parses but never fires: the service would revisit once and then never again.
    if trigger.get_next_fire_time(None, datetime.now(trigger.timezone)) is None:
        raise ConfigError(name, f"expected a cron expression that fires, got {value!r} (it never matches a date)")
    return value


def sentry_dsn(name: str, raw: Any) -> str | None:
    """A DSN the Sentry SDK accepts, checked at load: the SDK raises BadDsn at init, in every command but config."""
    value = text()(name, raw)
    if value is None:
        return None
    from sentry_sdk.utils import BadDsn, Dsn  # lazy: the SDK is only needed when a DSN is set

    try:
        Dsn(value)
    except BadDsn as exc:
        raise ConfigError(name, f"expected a Sentry DSN such as https://<key>@o0.ingest.sentry.io/<project>, "
                                f"got {mask_url(value)} ({exc})") from None
    return value


def log_level(name: str, raw: Any) -> str:
    return choice(("debug", "info", "warning", "error", "critical"))(name, raw).upper()


def key_prefix(name: str, raw: Any) -> str:
    value = str(raw).strip()
    if not re.fullmatch(r"[A-Za-z0-9_.:{}-]+", value):
        raise ConfigError(name, f"expected a key prefix of letters, digits and _.:-, got {raw!r}")
    return value
