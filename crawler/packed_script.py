"""A Lua script called with its request packed here: the reprint index's hot path (crawler/dedupe.py),
one call per article.

redis-py's `Script` call spends ~100 µs of Python per call on the bench machine — each argument encoded
on its own, the retry and observability wrappers around the command — on top of a ~85 µs loopback round
trip: a third of the index's p99 at a million articles (docs/dedupe.md). Here the request is a few byte
joins, sent on a connection taken from the client's own pool for the call (so its settings, timeouts and
health checks apply) and read by that connection's parser. Anything unusual goes through redis-py's
`Script` instead — the script missing on the server (a restart, a failover), a connection error — with
its retries and reconnects, so the behaviour is redis-py's and only the common case is short.
"""

from __future__ import annotations

import inspect

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def _bulk(value) -> bytes:
    if not isinstance(value, bytes):
        value = str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(value), value)


class PackedScript:
    """`script(keys, args)`: EVALSHA of `source`; the reply as redis-py's `Script` returns it. Keys and
    arguments: bytes, str (UTF-8) or int. Thread-safe (the pool is)."""

    def __init__(self, client, source: str):
        self.fallback = client.register_script(source)
        # a client bound to one connection, or a cluster client (no pool): redis-py's path every time
        self._pool = None if getattr(client, "connection", None) is not None else getattr(
            client, "connection_pool", None)
        # redis-py 5 wants a command name; later versions warn when given one
        self._pool_args = ()
        if self._pool is not None:
            first = next(iter(inspect.signature(self._pool.get_connection).parameters.values()), None)
            if first is not None and first.default is inspect.Parameter.empty and first.kind in (
                    inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
                self._pool_args = ("EVALSHA",)

    def __call__(self, keys: list, args: list):
        if self._pool is None:
            return self.fallback(keys=keys, args=args)
        request = b"".join([b"*%d\r\n$7\r\nEVALSHA\r\n" % (3 + len(keys) + len(args)), _bulk(self.fallback.sha),
                            _bulk(len(keys)), *map(_bulk, keys), *map(_bulk, args)])
        conn = self._pool.get_connection(*self._pool_args)
        try:
            conn.send_packed_command([request])
            return conn.read_response()
        except NoScriptError:  # the server lost it: redis-py's Script loads it again (below)
            pass
        except (RedisConnectionError, RedisTimeoutError):  # redis-py's retries and reconnects (below)
            conn.disconnect()
        except BaseException as exc:
            if not isinstance(exc, ResponseError):  # (an error reply leaves the connection in step; anything
                conn.disconnect()  # else may leave a reply unread: the connection is never reused)
            raise
        finally:
            self._pool.release(conn)
        return self.fallback(keys=keys, args=args)
