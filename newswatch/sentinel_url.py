"""The `redis+sentinel://` URL: parsed here, by text, for both the settings check and the connection.

It names several hosts (`h1:26379,h2:26380`), which `urllib.parse` cannot: `urlsplit(...).port` raises.
"""

from __future__ import annotations

from urllib.parse import unquote

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_FORM = "redis+sentinel://[:password@]host[:port][,host[:port]…]/service[/db]"


def parse_sentinel_url(url: str) -> tuple[list[tuple[str, int]], str, int, str | None, str | None]:
    """`redis+sentinel://[user:password@]host[:port][,host[:port]…]/service[/db]` ->
    (sentinels, service, db, username, password). The password is the primary's (and the sentinels').
    Raises ValueError (naming the expected form, never the URL: it carries the password)."""
    rest = url[len(SENTINEL_SCHEME) + 3:]
    userinfo, at, after = rest.rpartition("@")  # the last @: a password may hold one
    if not at:
        userinfo, after = "", rest
    hosts, _, path = after.partition("/")
    username, _, password = userinfo.partition(":")
    sentinels = []
    for part in filter(None, hosts.split(",")):
        host, sep, port = part.rpartition(":")
        if not sep or "]" in port:  # no port given (or a bare IPv6 literal)
            host, port = part, ""
        if port and not port.isdigit() or not host.strip("[]") or port and not 1 <= int(port) <= 65535:
            raise ValueError(f"expected {SENTINEL_FORM} (ports 1-65535)")
        sentinels.append((host.strip("[]"), int(port) if port else 26379))
    service, _, db = path.partition("/")
    if not url.startswith(SENTINEL_SCHEME + "://") or not sentinels or not service or (db and not db.isdigit()):
        raise ValueError(f"expected {SENTINEL_FORM}")
    return sentinels, service, int(db or 0), unquote(username) or None, unquote(password) or None
