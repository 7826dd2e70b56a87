"""Requests packed by hand, sent on a connection from a redis-py client's own pool: for the few hot paths
where redis-py's per-command Python is most of the cost (crawler/packed_script.py, alerts/packed_read.py;
docs/performance.md). The pool's connections carry the client's settings — timeouts, health checks, AUTH,
the database — and whatever such a path does not foresee is left to redis-py's own commands.
"""

from __future__ import annotations

import inspect


def bulk(value) -> bytes:
    """One RESP bulk string: bytes as they are, anything else as its UTF-8 text."""
    if not isinstance(value, bytes):
        value = str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(value), value)


def pool_of(client, *, bytes_replies: bool = False):
    """The client's connection pool, or None when redis-py's own path must serve every call: a client bound
    to one connection, a cluster client (no pool), or — `bytes_replies` — one that decodes replies to text."""
    if getattr(client, "connection", None) is not None:
        return None
    pool = getattr(client, "connection_pool", None)
    if pool is not None and bytes_replies and getattr(pool, "connection_kwargs", {}).get("decode_responses"):
        return None
    return pool


def take(pool, command: str):
    """A function taking a connection from `pool`: redis-py 5 wants a command name, later versions warn when
    given one."""
    first = next(iter(inspect.signature(pool.get_connection).parameters.values()), None)
    if first is not None and first.default is inspect.Parameter.empty and first.kind in (
            inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
        return lambda: pool.get_connection(command)
    return pool.get_connection
