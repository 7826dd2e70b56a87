"""Typed settings, read once per process and handed on.

Sources, strongest first: environment variables (`NEWSWATCH_…`, `SENTRY_DSN`, `SENTRY_ENVIRONMENT`), then
the optional TOML file named by `NEWSWATCH_CONFIG` (the same keys, either as `NEWSWATCH_SITE_URL` or as
`site_url`; several webhook endpoints as `[[webhooks]]` tables), then the defaults declared with each field of `Settings` below (each setting is declared once
there: its type, default, parser, documentation and whether it is secret; `SPECS`, the settings table in
docs/configuration.md and `newswatch config` are all derived from it). A value of the
wrong type or shape raises `ConfigError` naming the setting, which the CLI turns into one line and exit 2.

`Settings.load()` is called by the CLI; every other module receives the `Settings` object (or plain values
taken from it) and never reads the environment itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from newswatch import __version__, defaults, parsers
from newswatch.config_file import ENV_PREFIX, Endpoint, read_toml
from newswatch.errors import ConfigError
from newswatch.masking import mask
from newswatch.webhook_secrets import check_secrets


def setting(default: Any, parse: Callable[[str, Any], Any], doc: str, *, secret: bool = False, env: str = "",
            factory: Callable[[], Any] | None = None):
    """A `Settings` field that is a setting: its default, how a raw value is parsed, what it means, whether
    it is secret (masked in output), and its variable when not NEWSWATCH_<NAME>."""
    metadata = {"parse": parse, "doc": doc, "secret": secret, "env": env}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "newswatch"


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = setting(None, parsers.redis_url,
        "Redis server URL (redis://, rediss://, unix://, redis+sentinel://host:26379,…/service); unset: embedded server", secret=True)
    data_dir: Path = setting(None, parsers.path(False),
        "folder for the embedded Redis and local state (default ~/.local/share/newswatch)", factory=_default_data_dir)
    key_prefix: str = setting("newswatch", parsers.key_prefix,
        "prefix of every Redis key")
    site_url: str = setting(defaults.DEFAULT_SITE_URL, parsers.site_url,
        "origin of the site (scheme://host[:port]); a replica for tests")
    categories: tuple[str, ...] = setting(defaults.DEFAULT_CATEGORIES, parsers.categories,
        "comma-separated category slugs to revisit")
    max_pages: int = setting(defaults.DEFAULT_MAX_PAGES, parsers.number(int, minimum=1, maximum=50),
        "list pages per category per pass (stops early at a page of seen articles)")
    interval: int | None = setting(None, parsers.number(int, minimum=1, optional=True),
        f"seconds between revisits (default {defaults.DEFAULT_INTERVAL} unless NEWSWATCH_CRON is set)")
    jitter: int = setting(defaults.DEFAULT_JITTER, parsers.number(int, minimum=0),
        "up to this many seconds of random delay added to each revisit")
    cron: str | None = setting(None, parsers.cron,
        "5-field cron expression instead of an interval")
    timezone: str = setting(defaults.DEFAULT_TIMEZONE, parsers.timezone,
        "time zone the cron expression is evaluated in")
    run_timeout: int = setting(defaults.RUN_TIMEOUT, parsers.number(int, minimum=10),
        "seconds a revisit may take before it is killed")
    frontier: str = setting("memory", parsers.choice(("memory", "redis")),
        "a pass's request queue: memory (one process) or redis (scrapy-redis, shared with `newswatch crawl --worker` processes)")
    concurrency: int = setting(defaults.DEFAULT_CONCURRENCY, parsers.number(int, minimum=1, maximum=64),
        "concurrent requests to the site")
    download_delay: float = setting(defaults.DEFAULT_DOWNLOAD_DELAY, parsers.number(float, minimum=0),
        "seconds between requests to the site")
    autothrottle: bool = setting(True, parsers.boolean,
        "adapt the delay to the site's latency (Scrapy AutoThrottle)")
    download_timeout: float = setting(defaults.DEFAULT_DOWNLOAD_TIMEOUT, parsers.number(float, minimum=0.1),
        "seconds before a request is abandoned")
    max_download_size: int = setting(defaults.DEFAULT_MAX_DOWNLOAD_SIZE, parsers.number(int, minimum=1024),
        "bytes; larger responses are dropped")
    retry_times: int = setting(defaults.DEFAULT_RETRY_TIMES, parsers.number(int, minimum=0, maximum=20),
        "retries of a transient error (429, 5xx, timeouts)")
    retry_after_cap: float = setting(defaults.DEFAULT_RETRY_AFTER_CAP, parsers.number(float, minimum=0),
        "longest wait (seconds) a running pass holds every request after a 429/503's Retry-After, then retries; "
        "no later pass asks the site before the whole Retry-After (up to a day, kept in Redis)")
    user_agent: str | None = setting(None, parsers.text(),
        "User-Agent header (default names newswatch and its version)")
    analysis_processes: int | None = setting(None, parsers.number(int, minimum=0, maximum=64, optional=True),
        "worker processes that extract and fingerprint pages while the crawler downloads (default 1 on a multi-core machine, else 0: in the crawler itself)")
    analysis_timeout: float = setting(30.0, parsers.number(float, minimum=0.1),
        "seconds an analysis process may spend on one page; past it the page counts as a failed fetch (analysis_timeouts)")
    seen_days: int = setting(defaults.DEFAULT_SEEN_DAYS, parsers.number(int, minimum=1),
        "days an article URL stays recorded as seen")
    max_fetch_failures: int = setting(defaults.DEFAULT_MAX_FETCH_FAILURES, parsers.number(int, minimum=1),
        "passes that retry an article page that keeps failing")
    topics: Path | None = setting(None, parsers.path(),
        "topic file (TOML); default: the built-in US–Russia talks topic")
    dedupe_retention_days: int = setting(defaults.DEFAULT_DEDUPE_RETENTION_DAYS, parsers.number(int, minimum=1),
        "days a fingerprint is kept for reprint detection (changing it keeps what was indexed: docs/dedupe.md)")
    dedupe_min_chars: int = setting(defaults.DEFAULT_DEDUPE_MIN_CHARS, parsers.number(int, minimum=1),
        "texts shorter than this (normalised) are never fingerprinted into the index")
    stream_retention_days: float = setting(defaults.DEFAULT_STREAM_RETENTION_DAYS, parsers.number(float, minimum=0.01),
        "days an acknowledged stream entry is kept")
    webhook_url: str | None = setting(None, parsers.http_url,
        "alert webhook endpoint (one endpoint named 'default')", secret=True)
    webhook_secret: str | None = setting(None, parsers.text(),
        "whsec_ secret(s) for signing, space-separated during rotation", secret=True)
    webhook_format: str = setting(defaults.DEFAULT_WEBHOOK_FORMAT, parsers.choice(defaults.WEBHOOK_FORMATS),
        "body format: " + ", ".join(defaults.WEBHOOK_FORMATS))
    webhook_allow_private: bool = setting(False, parsers.boolean,
        "allow endpoints on loopback/private addresses (local receivers, tests)")
    webhook_max_attempts: int = setting(defaults.DEFAULT_WEBHOOK_MAX_ATTEMPTS, parsers.number(int, minimum=1),
        "attempts before an item is dead-lettered")
    webhook_max_age: float = setting(defaults.DEFAULT_WEBHOOK_MAX_AGE, parsers.number(float, minimum=1),
        "seconds after which an undeliverable item is dead-lettered")
    webhook_timeout: float = setting(defaults.DEFAULT_WEBHOOK_TIMEOUT, parsers.number(float, minimum=0.1),
        "connect and read timeout of a delivery, seconds")
    webhook_concurrency: int = setting(8, parsers.number(int, minimum=1, maximum=256),
        "concurrent deliveries per endpoint")
    webhook_backoff_base: float = setting(defaults.WEBHOOK_BACKOFF_BASE, parsers.number(float, minimum=0.001),
        "seconds before the first retry of a delivery; doubled on each further attempt, with jitter")
    webhook_backoff_cap: float = setting(defaults.WEBHOOK_BACKOFF_CAP, parsers.number(float, minimum=0.001),
        "longest wait between delivery attempts, seconds (also caps a receiver's Retry-After)")
    webhook_claim_idle: float = setting(defaults.WEBHOOK_CLAIM_IDLE, parsers.number(float, minimum=0.1),
        "seconds a delivery may sit untouched before another worker takes it over from a dead one")
    webhook_consumer: str | None = setting(None, parsers.text(),
        "consumer name of this alert worker in each group (default: the host name)")
    run_alerts: bool = setting(True, parsers.boolean,
        "`newswatch run` also runs the alert worker when a webhook is configured (0 when it runs as its own service)")
    leader_ttl: int = setting(defaults.DEFAULT_LEADER_TTL, parsers.number(int, minimum=3),
        "seconds the scheduler's leader lock lives unless renewed")
    history_size: int = setting(defaults.DEFAULT_HISTORY_SIZE, parsers.number(int, minimum=1),
        "runs kept in the run history")
    failed_runs_alert: int = setting(defaults.DEFAULT_FAILED_RUNS_ALERT, parsers.number(int, minimum=1),
        "failed runs in a row that raise an alert")
    metrics_port: int | None = setting(None, parsers.number(int, minimum=0, maximum=65535, optional=True),
        "serve Prometheus metrics on this port (unset: off)")
    log_level: str = setting("INFO", parsers.log_level,
        "debug, info, warning, error, critical")
    sentry_dsn: str | None = setting(None, parsers.sentry_dsn,
        "Sentry DSN; unset: nothing is sent", secret=True, env="SENTRY_DSN")
    sentry_environment: str | None = setting(None, parsers.text(),
        "Sentry environment name", env="SENTRY_ENVIRONMENT")
    # not settings of their own: the file's [[webhooks]] tables, the file, and where each value came from
    webhooks: tuple[Endpoint, ...] = ()
    config_file: Path | None = None
    # setting attr -> where its value came from: "default", "env", "argument", or the TOML file's path
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
            file_values, webhooks = read_toml(Path(config_path).expanduser(), {spec.attr for spec in SPECS})

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
        for endpoint in settings.endpoints:  # here, so `config` refuses what `alerts` and `run` would
            check_secrets(endpoint)
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
        # the file itself is read from the environment only; listed so `config` shows every variable it reads
        rows.append(("NEWSWATCH_CONFIG", str(self.config_file) if self.config_file else "(unset)",
                     "env" if self.config_file else "default"))
        for endpoint in self.webhooks:
            rows.append((f"webhooks.{endpoint.name}",
                         f"{mask(endpoint.url, True, 'url')} format={endpoint.format}"
                         f" secrets={len(endpoint.secrets)}", str(self.config_file)))
        return rows


@dataclass(frozen=True)
class Spec:
    """One setting as the loader, `newswatch config` and the docs table see it (derived from its field)."""

    attr: str
    parse: Callable[[str, Any], Any]
    default: Any  # None for a computed default (data_dir)
    doc: str
    secret: bool = False
    env: str = ""

    @property
    def env_name(self) -> str:
        return self.env or ENV_PREFIX + self.attr.upper()


SPECS: tuple[Spec, ...] = tuple(
    Spec(f.name, f.metadata["parse"], None if f.default is MISSING else f.default, f.metadata["doc"],
         f.metadata["secret"], f.metadata["env"])
    for f in fields(Settings) if "parse" in f.metadata)
_BY_ENV = {spec.env_name: spec for spec in SPECS}


def settings_fields() -> list[str]:
    return [f.name for f in fields(Settings)]


def known_env_names() -> set[str]:
    """Every environment variable newswatch reads (for checks of deployment files)."""
    return set(_BY_ENV) | {"NEWSWATCH_CONFIG"}
