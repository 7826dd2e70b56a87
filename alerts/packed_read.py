"""A delivery thread's usual round trip to Redis — `MULTI / XACK ids / HDEL ids / XREADGROUP COUNT n / EXEC`
(acks.py) — packed by hand.

Through a redis-py pipeline that transaction took more Python than anything else a delivery thread does
once per batch: a pipeline object, each command's arguments encoded one by one, the retry and observability
wrappers, then the reply turned into redis-py's shape only for the runner to turn it into its own
(docs/performance.md, section 6, fourth round). Here the request is a few byte joins, sent on a connection
taken from the client's own pool (so its settings, timeouts and health checks apply) and read by that
connection's parser, and the read's reply goes straight to (entry id, fields), the item's field left as
the bytes Redis sent (attempt.read_entry reads them as they are).

Anything unusual is left to redis-py: a client without a pool, a reply of a shape not foreseen, a
connection or timeout error — the exchange is then made again through the pipeline, with redis-py's
retries and reconnects (`Unpacked`). Sent twice, the transaction stays at-least-once: a second `XACK` of
the same ids is harmless, and entries the first read may have handed this consumer stay pending under its
name until the heartbeat adopts them (runner.py), as after redis-py's own retry. An error reply inside the
transaction (NOGROUP: the stream or group deleted) is raised as redis-py raises it, with the connection in
step.
"""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from alerts.membership import Entry, text
from newswatch.pooled import bulk as _bulk
from newswatch.pooled import pool_of, take

_MULTI = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC = b"*1\r\n$4\r\nEXEC\r\n"
_QUEUED = [b"OK", b"QUEUED", b"QUEUED", b"QUEUED"]


class Unpacked(Exception):
    """The packed exchange could not be made (or its outcome is unknown): make it through redis-py."""


class PackedRead:
    """`exchange(ids, consumer, count)`: acknowledge `ids` (XACK, and HDEL of their retry records) and read up
    to `count` new entries for `consumer`, in one transaction; the entries read. One per delivery thread:
    it keeps the connection it took from the pool until `close` (taking one for each exchange asks the
    socket whether it is readable first, a system call that lets the GIL go)."""

    def __init__(self, client, stream: str, group: str, retry_key: str):
        # redis-py's path every time for a client without a pool of its own, or one whose replies are text
        self._pool = pool_of(client, bytes_replies=True)
        self._take = None if self._pool is None else take(self._pool, "MULTI")
        self._xack = _bulk("XACK") + _bulk(stream) + _bulk(group)
        self._hdel = _bulk("HDEL") + _bulk(retry_key)
        self._read = (_bulk("XREADGROUP") + _bulk("GROUP") + _bulk(group), _bulk("COUNT"),
                      _bulk("STREAMS") + _bulk(stream) + _bulk(">"))
        self._conn = None

    def close(self) -> None:
        """Give the connection back to the pool."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._pool.release(conn)

    def _drop(self) -> None:
        """Close the connection (its state is unknown) and give it back: the next exchange takes another."""
        self._conn.disconnect()
        self.close()

    def exchange(self, ids: list[str], consumer: str, count: int) -> list[Entry]:
        """Raise `Unpacked` when redis-py must make the exchange instead (see the module docstring)."""
        if self._pool is None or not ids:
            raise Unpacked("no pool, or nothing to acknowledge")
        packed_ids = b"".join(map(_bulk, ids))
        request = b"".join((
            _MULTI,
            b"*%d\r\n" % (3 + len(ids)), self._xack, packed_ids,
            b"*%d\r\n" % (2 + len(ids)), self._hdel, packed_ids,
            b"*9\r\n", self._read[0], _bulk(consumer), self._read[1], _bulk(count), self._read[2],
            _EXEC))
        if self._conn is None:
            self._conn = self._take()
        conn = self._conn
        try:
            conn.send_packed_command([request])
            replies = [conn.read_response() for _ in range(5)]  # OK, QUEUED x 3, then EXEC's answers
            answers = replies[4]
            if replies[:4] != _QUEUED or not isinstance(answers, list) or len(answers) != 3:
                # not the replies of this request: whatever happened, it is redis-py's to make, and this
                # connection is not used again (a request read out of step hands its replies to another)
                raise Unpacked(f"unexpected replies {replies[:4]!r}, {type(answers).__name__}")
        except Unpacked:
            self._drop()
            raise
        except (RedisConnectionError, RedisTimeoutError) as exc:
            self._drop()  # redis-py's retries and reconnects take over
            raise Unpacked(str(exc)) from exc
        except BaseException:
            # an error reply (ResponseError) at MULTI or at a command's queueing leaves later replies
            # unread: the connection is never reused, and the caller learns what went wrong
            self._drop()
            raise
        for answer in answers:
            if isinstance(answer, ResponseError):  # e.g. NOGROUP: the stream or group was deleted under us
                raise answer
        return self._entries(answers[2])

    def _entries(self, reply) -> list[Entry]:
        """(entry id, fields) of a raw XREADGROUP reply: a map by stream (RESP3) or pairs (RESP2)."""
        if reply is None:
            return []
        if isinstance(reply, dict):
            streams = reply.values()
        elif isinstance(reply, list):
            streams = [pair[1] for pair in reply]
        else:
            raise Unpacked(f"unexpected XREADGROUP reply {type(reply).__name__}")
        out = []
        for entries in streams:
            for entry_id, flat in entries:
                if not flat:  # never for new entries (">"); kept as Membership reads it
                    out.append((text(entry_id), None))
                    continue
                fields = dict(zip(map(text, flat[::2]), flat[1::2], strict=False))
                for name in fields:  # every field as text but the item, kept as bytes (attempt.read_entry)
                    if name != "data":
                        fields[name] = text(fields[name])
                out.append((text(entry_id), fields))
        return out
