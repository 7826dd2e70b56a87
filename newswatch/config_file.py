"""The optional TOML settings file (`NEWSWATCH_CONFIG`) and the webhook endpoints it declares.

The file holds the same keys as the environment (`NEWSWATCH_SITE_URL` or `site_url`) and any number of
`[[webhooks]]` tables, each one `Endpoint`. Values are returned raw: `newswatch.config` parses them with
the same parsers as the environment's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newswatch import defaults, parsers
from newswatch.errors import ConfigError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ENV_PREFIX = "NEWSWATCH_"


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


def read_toml(path: Path, known: set[str]) -> tuple[dict[str, Any], tuple[Endpoint, ...]]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("NEWSWATCH_CONFIG", f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("NEWSWATCH_CONFIG", f"{path}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("NEWSWATCH_CONFIG", f"{path}: not valid TOML ({exc})") from None

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
    if not isinstance(url, str):
        raise ConfigError(f"{where}.url", "expected an http(s) URL")
    url = parsers.http_url(f"{where}.url", url)
    secrets = table.get("secrets", table.get("secret", ()))
    if isinstance(secrets, str):
        secrets = secrets.split()
    if not isinstance(secrets, (list, tuple)) or not all(isinstance(s, str) for s in secrets):
        raise ConfigError(f"{where}.secret", "expected a string or a list of strings")
    fmt = parsers.choice(defaults.WEBHOOK_FORMATS)(f"{where}.format", table.get("format", defaults.DEFAULT_WEBHOOK_FORMAT))
    allow = parsers.boolean(f"{where}.allow_private", table.get("allow_private", False))
    rate = parsers.number(float, minimum=0.01, optional=True)(f"{where}.rate_per_minute", table.get("rate_per_minute"))
    return Endpoint(name=name, url=url, secrets=tuple(secrets), format=fmt, allow_private=allow, rate_per_minute=rate)
