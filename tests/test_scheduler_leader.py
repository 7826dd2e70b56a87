"""The leader lock against a real Redis server: one holder at a time, compare-before-write, expiry."""

from __future__ import annotations

import pytest

from newswatch.holders import current_leader
from scheduler.leader import LeaderLock, holder_id
from tests.waiting import wait_for


def test_only_one_holder(redis_client, keys):
    a = LeaderLock(redis_client, keys.leader, ttl=5, holder="host-a:1:aa")
    b = LeaderLock(redis_client, keys.leader, ttl=5, holder="host-b:2:bb")
    assert a.acquire()
    assert not b.acquire()
    assert a.acquire(), "acquiring a lock one already holds keeps it"
    assert redis_client.get(keys.leader) == b"host-a:1:aa"


def test_renew_extends_only_own_lock(redis_client, keys):
    a = LeaderLock(redis_client, keys.leader, ttl=5, holder="a")
    b = LeaderLock(redis_client, keys.leader, ttl=5, holder="b")
    assert a.acquire()
    redis_client.pexpire(keys.leader, 500)
    assert a.renew()
    assert redis_client.pttl(keys.leader) > 1000
    assert not b.renew()
    assert redis_client.get(keys.leader) == b"a"


def test_release_never_deletes_a_successors_lock(redis_client, keys):
    a = LeaderLock(redis_client, keys.leader, ttl=5, holder="a")
    b = LeaderLock(redis_client, keys.leader, ttl=5, holder="b")
    assert a.acquire()
    redis_client.delete(keys.leader)  # a's lock expired while it stalled ...
    assert b.acquire()                # ... and b took over
    assert not a.renew()
    assert not a.release()
    assert redis_client.get(keys.leader) == b"b"
    assert b.release()
    assert redis_client.get(keys.leader) is None


def test_standby_takes_over_after_expiry(redis_client, keys):
    a = LeaderLock(redis_client, keys.leader, ttl=1, holder="a")
    b = LeaderLock(redis_client, keys.leader, ttl=1, holder="b")
    assert a.acquire()
    assert not b.acquire()
    # a dies without releasing: nothing renews, the key expires, b's poll succeeds
    assert wait_for(b.acquire, timeout=10)
    assert redis_client.get(keys.leader) == b"b"


def test_renew_reports_failure_when_redis_is_unreachable(keys):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    lock = LeaderLock(dead, keys.leader, ttl=3, holder="a")
    assert lock.renew() is False


def test_current_leader_describes_holder(redis_client, keys):
    assert current_leader(redis_client, keys.leader) is None
    holder = holder_id()
    lock = LeaderLock(redis_client, keys.leader, ttl=30, holder=holder)
    assert lock.acquire()
    info = current_leader(redis_client, keys.leader)
    assert info["holder"] == holder
    assert info["pid"] == int(holder.split(":")[1])
    assert 0 < info["ttl"] <= 30


def test_bad_ttl_is_rejected(redis_client, keys):
    with pytest.raises(ValueError):
        LeaderLock(redis_client, keys.leader, ttl=0)
