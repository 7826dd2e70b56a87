"""Typed settings, read once per process and handed on.

Sources, strongest first: environment variables (`NEWSWATCH_…`, `SENTRY_DSN`, `SENTRY_ENVIRONMENT`), then
the optional TOML file named by `NEWSWATCH_CONFIG` (the same keys, either as `NEWSWATCH_SITE_URL` or as
`site_url`; several webhook endpoints as `[[webhooks]]` tables), then the defaults below. A value of the
wrong type or shape raises `ConfigError` naming the setting, which the CLI turns into one line and exit 2.

`Settings.load()` is called by the CLI; every other module receives the `Settings` object (or plain values
taken from it) and never reads the environment itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from newswatch import __version__, defaults
from newswatch.crontab import crontab_trigger
from newswatch.errors import ConfigError
from newswatch.masking import mask
from newswatch.sentinel_url import SENTINEL_FORM, parse_sentinel_url

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ENV_PREFIX = "NEWSWATCH_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# --- value parsers: each takes (setting name, raw value) and returns the typed value or raises ---------

def _bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(name, f"expected a boolean (1/0, true/false, yes/no), got {raw!r}")


def _number(kind: type, *, minimum: float | None = None, maximum: float | None = None,
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
        if minimum is not None and value < minimum:
            raise ConfigError(name, f"expected at least {minimum}, got {raw!r}")
        if maximum is not None and value > maximum:
            raise ConfigError(name, f"expected at most {maximum}, got {raw!r}")
        return value
    return parse


def _text(optional: bool = True) -> Callable[[str, Any], Any]:
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


def _path(optional: bool = True) -> Callable[[str, Any], Any]:
    text = _text(optional)

    def parse(name: str, raw: Any):
        value = text(name, raw)
        return Path(value).expanduser() if value else None
    return parse


def parse_site_url(name: str, raw: Any) -> str:
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


def _redis_url(name: str, raw: Any) -> str | None:
    value = _text()(name, raw)
    if value is None:
        return None
    scheme = urlsplit(value).scheme
    if scheme == "redis+sentinel":
        try:
            parse_sentinel_url(value)
        except ValueError:
            raise ConfigError(name, f"expected {SENTINEL_FORM}") from None
        return value
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(name, f"expected a redis://, rediss://, unix:// or redis+sentinel:// URL, got scheme {scheme!r}")
    return value


def _categories(name: str, raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else str(raw).split(",")
    out = tuple(str(item).strip() for item in items if str(item).strip())
    if not out:
        raise ConfigError(name, "expected at least one category slug, e.g. international")
    for slug in out:
        if not re.fullmatch(r"[a-z0-9_-]+", slug):
            raise ConfigError(name, f"expected category slugs like 'international', got {slug!r}")
    return out


def _choice(options: tuple[str, ...]) -> Callable[[str, Any], str]:
    def parse(name: str, raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in options:
            raise ConfigError(name, f"expected one of {', '.join(options)}, got {raw!r}")
        return value
    return parse


def _timezone(name: str, raw: Any) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    value = str(raw).strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(name, f"expected an IANA time zone such as Asia/Shanghai, got {raw!r}") from None
    return value


def _cron(name: str, raw: Any) -> str | None:
    value = _text()(name, raw)
    if value is None:
        return None
    try:
        crontab_trigger(value, "UTC")  # the function that builds the revisit job's trigger
    except (ValueError, TypeError) as exc:
        raise ConfigError(name, f"expected a 5-field cron expression such as '*/10 * * * *', "
                                f"got {value!r} ({exc})") from None
    return value


def _log_level(name: str, raw: Any) -> str:
    return _choice(("debug", "info", "warning", "error", "critical"))(name, raw).upper()


def _prefix(name: str, raw: Any) -> str:
    value = str(raw).strip()
    if not re.fullmatch(r"[A-Za-z0-9_.:{}-]+", value):
        raise ConfigError(name, f"expected a key prefix of letters, digits and _.:-, got {raw!r}")
    return value


# --- the settings table ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    attr: str
    parse: Callable[[str, Any], Any]
    default: Any
    doc: str
    secret: bool = False
    env: str = ""  # defaults to NEWSWATCH_<ATTR>

    @property
    def env_name(self) -> str:
        return self.env or ENV_PREFIX + self.attr.upper()


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "newswatch"


SPECS: tuple[Spec, ...] = (
    Spec("redis_url", _redis_url, None, "Redis server URL (redis://, rediss://, unix://, redis+sentinel://host:26379,…/service); unset: embedded server", secret=True),
    Spec("data_dir", _path(False), None, "folder for the embedded Redis and local state (default ~/.local/share/newswatch)"),
    Spec("key_prefix", _prefix, "newswatch", "prefix of every Redis key"),
    Spec("site_url", parse_site_url, defaults.DEFAULT_SITE_URL, "origin of the site (scheme://host[:port]); a replica for tests"),
    Spec("categories", _categories, defaults.DEFAULT_CATEGORIES, "comma-separated category slugs to revisit"),
    Spec("max_pages", _number(int, minimum=1, maximum=50), defaults.DEFAULT_MAX_PAGES, "list pages per category per pass (stops early at a page of seen articles)"),
    Spec("interval", _number(int, minimum=1, optional=True), None, f"seconds between revisits (default {defaults.DEFAULT_INTERVAL} unless NEWSWATCH_CRON is set)"),
    Spec("jitter", _number(int, minimum=0), defaults.DEFAULT_JITTER, "up to this many seconds of random delay added to each revisit"),
    Spec("cron", _cron, None, "5-field cron expression instead of an interval"),
    Spec("timezone", _timezone, defaults.DEFAULT_TIMEZONE, "time zone the cron expression is evaluated in"),
    Spec("run_timeout", _number(int, minimum=10), defaults.RUN_TIMEOUT, "seconds a revisit may take before it is killed"),
    Spec("frontier", _choice(("memory", "redis")), "memory", "a pass's request queue: memory (one process) or redis (scrapy-redis, shared with `newswatch crawl --worker` processes)"),
    Spec("concurrency", _number(int, minimum=1, maximum=64), defaults.DEFAULT_CONCURRENCY, "concurrent requests to the site"),
    Spec("download_delay", _number(float, minimum=0), defaults.DEFAULT_DOWNLOAD_DELAY, "seconds between requests to the site"),
    Spec("autothrottle", _bool, True, "adapt the delay to the site's latency (Scrapy AutoThrottle)"),
    Spec("download_timeout", _number(float, minimum=0.1), defaults.DEFAULT_DOWNLOAD_TIMEOUT, "seconds before a request is abandoned"),
    Spec("max_download_size", _number(int, minimum=1024), defaults.DEFAULT_MAX_DOWNLOAD_SIZE, "bytes; larger responses are dropped"),
    Spec("retry_times", _number(int, minimum=0, maximum=20), defaults.DEFAULT_RETRY_TIMES, "retries of a transient error (429, 5xx, timeouts)"),
    Spec("retry_after_cap", _number(float, minimum=0), defaults.DEFAULT_RETRY_AFTER_CAP, "longest Retry-After (seconds) honoured from the site"),
    Spec("user_agent", _text(), None, "User-Agent header (default names newswatch and its version)"),
    Spec("analysis_processes", _number(int, minimum=0, maximum=64, optional=True), None, "worker processes that extract and fingerprint pages while the crawler downloads (default 1 on a multi-core machine, else 0: in the crawler itself)"),
    Spec("analysis_timeout", _number(float, minimum=0.1), 30.0, "seconds an analysis process may spend on one page; past it the page counts as a failed fetch (analysis_timeouts)"),
    Spec("seen_days", _number(int, minimum=1), defaults.DEFAULT_SEEN_DAYS, "days an article URL stays recorded as seen"),
    Spec("max_fetch_failures", _number(int, minimum=1), defaults.DEFAULT_MAX_FETCH_FAILURES, "passes that retry an article page that keeps failing"),
    Spec("topics", _path(), None, "topic file (TOML); default: the built-in US–Russia talks topic"),
    Spec("dedupe_retention_days", _number(int, minimum=1), defaults.DEFAULT_DEDUPE_RETENTION_DAYS, "days a fingerprint is kept for reprint detection"),
    Spec("dedupe_min_chars", _number(int, minimum=1), defaults.DEFAULT_DEDUPE_MIN_CHARS, "texts shorter than this (normalised) are never fingerprinted into the index"),
    Spec("stream_retention_days", _number(float, minimum=0.01), defaults.DEFAULT_STREAM_RETENTION_DAYS, "days an acknowledged stream entry is kept"),
    Spec("webhook_url", _text(), None, "alert webhook endpoint (one endpoint named 'default')", secret=True),
    Spec("webhook_secret", _text(), None, "whsec_ secret(s) for signing, space-separated during rotation", secret=True),
    Spec("webhook_format", _choice(defaults.WEBHOOK_FORMATS), defaults.DEFAULT_WEBHOOK_FORMAT, "body format: " + ", ".join(defaults.WEBHOOK_FORMATS)),
    Spec("webhook_allow_private", _bool, False, "allow endpoints on loopback/private addresses (local receivers, tests)"),
    Spec("webhook_max_attempts", _number(int, minimum=1), defaults.DEFAULT_WEBHOOK_MAX_ATTEMPTS, "attempts before an item is dead-lettered"),
    Spec("webhook_max_age", _number(float, minimum=1), defaults.DEFAULT_WEBHOOK_MAX_AGE, "seconds after which an undeliverable item is dead-lettered"),
    Spec("webhook_timeout", _number(float, minimum=0.1), defaults.DEFAULT_WEBHOOK_TIMEOUT, "connect and read timeout of a delivery, seconds"),
    Spec("webhook_concurrency", _number(int, minimum=1, maximum=256), 8, "concurrent deliveries per endpoint"),
    Spec("webhook_backoff_base", _number(float, minimum=0.001), defaults.WEBHOOK_BACKOFF_BASE, "seconds before the first retry of a delivery; doubled on each further attempt, with jitter"),
    Spec("webhook_backoff_cap", _number(float, minimum=0.001), defaults.WEBHOOK_BACKOFF_CAP, "longest wait between delivery attempts, seconds (also caps a receiver's Retry-After)"),
    Spec("webhook_claim_idle", _number(float, minimum=0.1), defaults.WEBHOOK_CLAIM_IDLE, "seconds a delivery may sit untouched before another worker takes it over from a dead one"),
    Spec("webhook_consumer", _text(), None, "consumer name of this alert worker in each group (default: the host name)"),
    Spec("run_alerts", _bool, True, "`newswatch run` also runs the alert worker when a webhook is configured (0 when it runs as its own service)"),
    Spec("leader_ttl", _number(int, minimum=3), defaults.DEFAULT_LEADER_TTL, "seconds the scheduler's leader lock lives unless renewed"),
    Spec("history_size", _number(int, minimum=1), defaults.DEFAULT_HISTORY_SIZE, "runs kept in the run history"),
    Spec("failed_runs_alert", _number(int, minimum=1), defaults.DEFAULT_FAILED_RUNS_ALERT, "failed runs in a row that raise an alert"),
    Spec("metrics_port", _number(int, minimum=0, maximum=65535, optional=True), None, "serve Prometheus metrics on this port (unset: off)"),
    Spec("log_level", _log_level, "INFO", "debug, info, warning, error"),
    Spec("sentry_dsn", _text(), None, "Sentry DSN; unset: nothing is sent", secret=True, env="SENTRY_DSN"),
    Spec("sentry_environment", _text(), None, "Sentry environment name", env="SENTRY_ENVIRONMENT"),
)
_BY_ENV = {spec.env_name: spec for spec in SPECS}


@dataclass(frozen=True)
class Endpoint:
    """One webhook endpoint: its name names its consumer group, `alerts:<name>`."""

    name: str
    url: str
    secrets: tuple[str, ...] = ()
    format: str = defaults.DEFAULT_WEBHOOK_FORMAT
    allow_private: bool = False
    rate_per_minute: float | None = None  # None: the format's default (DingTalk: 20)

    def __repr__(self) -> str:  # never print the URL or secret: both may carry credentials
        return f"Endpoint(name={self.name!r}, format={self.format!r})"


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None
    data_dir: Path = field(default_factory=_default_data_dir)
    key_prefix: str = "newswatch"
    site_url: str = defaults.DEFAULT_SITE_URL
    categories: tuple[str, ...] = defaults.DEFAULT_CATEGORIES
    max_pages: int = defaults.DEFAULT_MAX_PAGES
    interval: int | None = None
    jitter: int = defaults.DEFAULT_JITTER
    cron: str | None = None
    timezone: str = defaults.DEFAULT_TIMEZONE
    run_timeout: int = defaults.RUN_TIMEOUT
    frontier: str = "memory"
    concurrency: int = defaults.DEFAULT_CONCURRENCY
    download_delay: float = defaults.DEFAULT_DOWNLOAD_DELAY
    autothrottle: bool = True
    download_timeout: float = defaults.DEFAULT_DOWNLOAD_TIMEOUT
    max_download_size: int = defaults.DEFAULT_MAX_DOWNLOAD_SIZE
    retry_times: int = defaults.DEFAULT_RETRY_TIMES
    retry_after_cap: float = defaults.DEFAULT_RETRY_AFTER_CAP
    user_agent: str | None = None
    analysis_processes: int | None = None
    analysis_timeout: float = 30.0
    seen_days: int = defaults.DEFAULT_SEEN_DAYS
    max_fetch_failures: int = defaults.DEFAULT_MAX_FETCH_FAILURES
    topics: Path | None = None
    dedupe_retention_days: int = defaults.DEFAULT_DEDUPE_RETENTION_DAYS
    dedupe_min_chars: int = defaults.DEFAULT_DEDUPE_MIN_CHARS
    stream_retention_days: float = defaults.DEFAULT_STREAM_RETENTION_DAYS
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_format: str = defaults.DEFAULT_WEBHOOK_FORMAT
    webhook_allow_private: bool = False
    webhook_max_attempts: int = defaults.DEFAULT_WEBHOOK_MAX_ATTEMPTS
    webhook_max_age: float = defaults.DEFAULT_WEBHOOK_MAX_AGE
    webhook_timeout: float = defaults.DEFAULT_WEBHOOK_TIMEOUT
    webhook_concurrency: int = 8
    webhook_backoff_base: float = defaults.WEBHOOK_BACKOFF_BASE
    webhook_backoff_cap: float = defaults.WEBHOOK_BACKOFF_CAP
    webhook_claim_idle: float = defaults.WEBHOOK_CLAIM_IDLE
    webhook_consumer: str | None = None
    run_alerts: bool = True
    leader_ttl: int = defaults.DEFAULT_LEADER_TTL
    history_size: int = defaults.DEFAULT_HISTORY_SIZE
    failed_runs_alert: int = defaults.DEFAULT_FAILED_RUNS_ALERT
    metrics_port: int | None = None
    log_level: str = "INFO"
    sentry_dsn: str | None = None
    sentry_environment: str | None = None
    webhooks: tuple[Endpoint, ...] = ()
    config_file: Path | None = None
    # setting attr -> where its value came from: "default", "env", or the TOML file's path
    sources: dict = field(default_factory=dict, compare=False, repr=False)

    def __repr__(self) -> str:  # a Settings in a log line or a Sentry frame must not carry its secrets
        shown = ", ".join(f"{spec.attr}={mask(getattr(self, spec.attr), spec.secret, spec.attr)!r}"
                          for spec in SPECS if getattr(self, spec.attr) != spec.default)
        return f"Settings({shown})"

    # -- derived values ------------------------------------------------------------------------------
    @property
    def keys(self) -> defaults.Keys:
        return defaults.Keys(self.key_prefix)

    @property
    def effective_interval(self) -> int | None:
        """Seconds between revisits, or None when a cron expression schedules them."""
        if self.cron:
            return None
        return self.interval or defaults.DEFAULT_INTERVAL

    @property
    def effective_analysis_processes(self) -> int:
        if self.analysis_processes is not None:
            return self.analysis_processes
        return 1 if (os.cpu_count() or 1) > 1 else 0

    @property
    def effective_user_agent(self) -> str:
        return self.user_agent or defaults.DEFAULT_USER_AGENT.format(version=__version__)

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Webhook endpoints: the `[[webhooks]]` tables, plus `default` from NEWSWATCH_WEBHOOK_URL."""
        out = [replace(e, allow_private=e.allow_private or self.webhook_allow_private) for e in self.webhooks]
        if self.webhook_url:
            out.append(Endpoint(
                name="default", url=self.webhook_url,
                secrets=tuple((self.webhook_secret or "").split()),
                format=self.webhook_format, allow_private=self.webhook_allow_private,
            ))
        return tuple(out)

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with command-line overrides, validated like the environment and recorded as 'argument'."""
        parsed = {}
        sources = dict(self.sources)
        for attr, raw in values.items():
            if raw is None:
                continue
            spec = next(s for s in SPECS if s.attr == attr)
            parsed[attr] = spec.parse(spec.env_name, raw)
            sources[attr] = "argument"
        return replace(self, sources=sources, **parsed)

    # -- loading -------------------------------------------------------------------------------------
    @classmethod
    def load(cls, environ: dict | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        file_values: dict[str, Any] = {}
        webhooks: tuple[Endpoint, ...] = ()

        config_path = env.get("NEWSWATCH_CONFIG", "").strip()
        if config_path:
            file_values, webhooks = _read_toml(Path(config_path).expanduser())

        for spec in SPECS:
            if spec.env_name in env and env[spec.env_name].strip() != "":
                values[spec.attr] = spec.parse(spec.env_name, env[spec.env_name])
                sources[spec.attr] = "env"
            elif spec.attr in file_values:
                values[spec.attr] = spec.parse(spec.env_name, file_values[spec.attr])
                sources[spec.attr] = config_path
            else:
                sources[spec.attr] = "default"
        for name in env:
            if name.startswith(ENV_PREFIX) and name not in _BY_ENV and name != "NEWSWATCH_CONFIG":
                raise ConfigError(name, "unknown setting (see `newswatch config` for the known ones)")

        if values.get("data_dir") is None:
            values.pop("data_dir", None)
        if values.get("interval") and values.get("cron"):
            raise ConfigError("NEWSWATCH_CRON", "give either NEWSWATCH_INTERVAL or NEWSWATCH_CRON, not both")
        settings = cls(**values, webhooks=webhooks,
                       config_file=Path(config_path) if config_path else None, sources=sources)
        if settings.seen_days < settings.dedupe_retention_days:
            # A page forgotten while its fingerprint is kept is fetched again, and the dedupe step takes
            # its own fingerprint for the entry of an interrupted earlier pass: it would be alerted again.
            raise ConfigError("NEWSWATCH_SEEN_DAYS", f"expected at least NEWSWATCH_DEDUPE_RETENTION_DAYS "
                              f"({settings.dedupe_retention_days}), got {settings.seen_days}")
        names = [e.name for e in settings.endpoints]
        if len(names) != len(set(names)):
            raise ConfigError("webhooks", f"endpoint names must be unique, got {names}")
        return settings

    def describe(self) -> list[tuple[str, str, str]]:
        """(setting, effective value with secrets masked, source) for every setting: `newswatch config`."""
        rows = []
        for spec in SPECS:
            value = getattr(self, spec.attr)
            if spec.attr == "data_dir":
                value = self.data_dir
            elif spec.attr == "interval" and value is None:
                value = self.effective_interval
            elif spec.attr == "analysis_processes" and value is None:
                value = self.effective_analysis_processes
            elif spec.attr == "user_agent" and value is None:
                value = self.effective_user_agent
            rows.append((spec.env_name, mask(value, spec.secret, spec.attr), self.sources.get(spec.attr, "default")))
        for endpoint in self.webhooks:
            rows.append((f"webhooks.{endpoint.name}",
                         f"{mask(endpoint.url, True, 'url')} format={endpoint.format}"
                         f" secrets={len(endpoint.secrets)}", str(self.config_file)))
        return rows


def _read_toml(path: Path) -> tuple[dict[str, Any], tuple[Endpoint, ...]]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("NEWSWATCH_CONFIG", f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("NEWSWATCH_CONFIG", f"{path}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("NEWSWATCH_CONFIG", f"{path}: not valid TOML ({exc})") from None

    known = {spec.attr for spec in SPECS}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "webhooks":
            continue
        attr = key[len(ENV_PREFIX):].lower() if key.upper().startswith(ENV_PREFIX) else key.lower()
        if attr not in known:
            raise ConfigError(f"{path}: {key}", "unknown setting (see `newswatch config` for the known ones)")
        values[attr] = value
    endpoints = []
    tables = raw.get("webhooks", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{path}: webhooks", "expected [[webhooks]] tables")
    for n, table in enumerate(tables, 1):
        endpoints.append(_endpoint(f"{path}: webhooks[{n}]", table))
    return values, tuple(endpoints)


def _endpoint(where: str, table: Any) -> Endpoint:
    if not isinstance(table, dict):
        raise ConfigError(where, "expected a table with name and url")
    allowed = {"name", "url", "secret", "secrets", "format", "allow_private", "rate_per_minute"}
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(where, f"unknown keys {sorted(unknown)}; expected {sorted(allowed)}")
    name = table.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError(f"{where}.name", "expected a name of letters, digits and _.-")
    url = table.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise ConfigError(f"{where}.url", "expected an http(s) URL")
    secrets = table.get("secrets", table.get("secret", ()))
    if isinstance(secrets, str):
        secrets = secrets.split()
    if not isinstance(secrets, (list, tuple)) or not all(isinstance(s, str) for s in secrets):
        raise ConfigError(f"{where}.secret", "expected a string or a list of strings")
    fmt = _choice(defaults.WEBHOOK_FORMATS)(f"{where}.format", table.get("format", defaults.DEFAULT_WEBHOOK_FORMAT))
    allow = _bool(f"{where}.allow_private", table.get("allow_private", False))
    rate = _number(float, minimum=0.01, optional=True)(f"{where}.rate_per_minute", table.get("rate_per_minute"))
    return Endpoint(name=name, url=url, secrets=tuple(secrets), format=fmt, allow_private=allow, rate_per_minute=rate)


def settings_fields() -> list[str]:
    return [f.name for f in fields(Settings)]


def known_env_names() -> set[str]:
    """Every environment variable newswatch reads (for checks of deployment files)."""
    return set(_BY_ENV) | {"NEWSWATCH_CONFIG"}
