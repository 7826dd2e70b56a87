"""Masking of secrets: how a URL or secret setting is shown, and which values must never leave the machine.

URLs are masked by splitting text, never by `urlsplit(...).port`: a Sentinel URL names several hosts
(`redis+sentinel://:pw@h1:26379,h2:26380/mymaster`) and a port parser raises on it. A masked URL keeps its
scheme and hosts, so a user can still tell which server is meant, and drops the credentials (and, where the
path or query may carry a token, as in a webhook URL, those too).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

FILTERED = "[Filtered]"
# Paths that name a database or a socket, not a token: shown as they are.
_PLAIN_PATH_SCHEMES = ("redis", "rediss", "redis+sentinel", "unix")


def split_url(url: str) -> tuple[str, str, str, str]:
    """(scheme, userinfo, hosts, rest) of `scheme://[userinfo@]hosts[/path][?query]`, by text alone.

    The userinfo ends at the LAST `@`, so a password holding an unescaped `@` or `/` is still all userinfo
    (a path holding an `@` then counts as userinfo too: masking errs towards hiding).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "", "", "", url
    userinfo, at, after = rest.rpartition("@")
    if not at:
        userinfo, after = "", rest
    cut = min((i for i in (after.find("/"), after.find("?"), after.find("#")) if i >= 0), default=len(after))
    return scheme.lower(), userinfo, after[:cut], after[cut:]


def url_credentials(url: str) -> list[str]:
    """The user name and password a URL carries (as written and percent-decoded), and its query values."""
    _, userinfo, _, rest = split_url(url)
    out = []
    if userinfo:
        user, _, password = userinfo.partition(":")
        out += [user, password, unquote(user), unquote(password)]
    query = rest.partition("?")[2].partition("#")[0]
    for pair in filter(None, query.split("&")):
        value = pair.partition("=")[2]
        out += [value, unquote(value)]
    return [value for value in out if value]


def mask_url(url: str) -> str:
    """`scheme://***@hosts/path` for a Redis URL (credentials and query hidden), `scheme://hosts/***` for
    any other URL whose path or query may be a token (a webhook's)."""
    scheme, userinfo, hosts, rest = split_url(url)
    if not scheme:
        return "***"
    shown = f"{scheme}://" + ("***@" if userinfo else "") + hosts
    if scheme in _PLAIN_PATH_SCHEMES:
        path, query = rest.partition("?")[0].partition("#")[0], "?" in rest
        return shown + path + ("?***" if query else "")
    return shown + ("/***" if rest.strip("/") else "")


def mask(value: Any, secret: bool, attr: str = "") -> str:
    """A setting's value as `newswatch config` and `status` show it: secrets masked, URLs by `mask_url`."""
    if value is None:
        return "(unset)"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    text = str(value)
    if not secret:
        return text
    if (attr.endswith("url") or attr.endswith("dsn")) and "://" in text:
        return mask_url(text)
    return "***"


def secret_values(settings) -> tuple[str, ...]:
    """Every configured secret, and every credential inside a configured URL, by value: what a Sentry event
    must not carry wherever it appears (message, breadcrumb, a frame's local variables)."""
    values = [settings.redis_url, settings.webhook_url, settings.webhook_secret]
    values += (settings.webhook_secret or "").split()
    for endpoint in settings.endpoints:
        values.append(endpoint.url)
        values.extend(endpoint.secrets)
    for url in (settings.redis_url, settings.webhook_url, *(e.url for e in settings.endpoints)):
        if url:
            values += url_credentials(url)
            scheme, _, _, rest = split_url(url)
            if scheme not in _PLAIN_PATH_SCHEMES and rest.strip("/"):
                values.append(rest)  # a webhook's path and query are its token
    unique = {value for value in values if value}
    return tuple(sorted(unique, key=len, reverse=True))  # longest first: a URL before the password inside it
