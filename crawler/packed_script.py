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

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from newswatch.pooled import bulk, pool_of, take


class PackedScript:
    """`script(keys, args)`: EVALSHA of `source`; the reply as redis-py's `Script` returns it. Keys and
    arguments: bytes, str (UTF-8) or int. Thread-safe (the pool is)."""

    def __init__(self, client, source: str):
        self.fallback = client.register_script(source)
        self._pool = pool_of(client)
        self._take = None if self._pool is None else take(self._pool, "EVALSHA")

    def __call__(self, keys: list, args: list):
        if self._pool is None:
            return self.fallback(keys=keys, args=args)
        request = b"".join([b"*%d\r\n$7\r\nEVALSHA\r\n" % (3 + len(keys) + len(args)), bulk(self.fallback.sha),
                            bulk(len(keys)), *map(bulk, keys), *map(bulk, args)])
        conn = self._take()
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
