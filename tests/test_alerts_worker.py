"""The worker as a process and as a group member: crashes, takeovers, shared groups, clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

from newswatch.groups import acked_floor
from newswatch.shutdown import SIGNAL_DEBOUNCE
from tests.alerts_support import FAST, Answer, Receiver, item, publish, running_worker
from tests.waiting import wait_for


def start_worker(test_env, tmp_path, receiver, consumer, **extra):
    env = dict(test_env) | FAST | {"NEWSWATCH_WEBHOOK_URL": receiver.url, "NEWSWATCH_WEBHOOK_CONSUMER": consumer}
    env |= {k: str(v) for k, v in extra.items()}
    log = open(tmp_path / f"worker-{consumer}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "newswatch.cli", "alerts"], env=env,
                            stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd())


def pending(client, keys, name="default") -> int:
    return client.xpending(keys.items, keys.group(name))["pending"]


def test_sigkill_mid_delivery_then_restart_delivers_everything(redis_client, keys, test_env, tmp_path):
    ids = [f"ddn-{n}" for n in range(120)]
    with Receiver(delay=0.02) as receiver:
        entries = publish(redis_client, keys, [item(n) for n in range(120)])
        by_entry = dict(zip(entries, ids, strict=True))
        proc = start_worker(test_env, tmp_path, receiver, "w1", NEWSWATCH_WEBHOOK_CONCURRENCY=4)
        try:
            assert receiver.wait_count(30)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            assert pending(redis_client, keys) > 0  # killed with deliveries in flight, unacknowledged
            in_flight = {by_entry[e["message_id"]] for e in redis_client.xpending_range(
                keys.items, keys.group("default"), "-", "+", 200)}
            received_before = len(receiver.requests)
            assert received_before < 120
            proc = start_worker(test_env, tmp_path, receiver, "w1", NEWSWATCH_WEBHOOK_CONCURRENCY=4)
            assert receiver.wait_ids(ids, timeout=60)
            assert wait_for(lambda: pending(redis_client, keys) == 0)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=20)
    assert code == 0
    got = Counter(receiver.ids())
    assert set(got) == set(ids)
    # at least once: only an item that was in flight (unacknowledged) when the worker died may arrive
    # twice, with the same webhook-id; an acknowledged item is never sent again
    repeated = {webhook_id for webhook_id, count in got.items() if count > 1}
    assert repeated <= in_flight, (repeated - in_flight, in_flight)
    assert max(got.values()) <= 2
    assert redis_client.xlen(keys.dead) == 0


def test_dead_consumer_entries_are_taken_over(redis_client, keys, make_settings, test_env, tmp_path):
    ids = [f"ddn-{n}" for n in range(60)]
    with Receiver(delay=0.02) as receiver:
        publish(redis_client, keys, [item(n) for n in range(60)])
        proc = start_worker(test_env, tmp_path, receiver, "dies", NEWSWATCH_WEBHOOK_CONCURRENCY=4)
        assert receiver.wait_count(10)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        orphaned = redis_client.xpending_range(keys.items, keys.group("default"), "-", "+", 100, consumername="dies")
        assert orphaned
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, NEWSWATCH_WEBHOOK_CONSUMER="lives", **FAST)
        with running_worker(redis_client, settings) as worker:
            assert receiver.wait_ids(ids, timeout=60)
            assert wait_for(lambda: pending(redis_client, keys) == 0)
    assert worker.stats["default"]["claimed"] >= len(orphaned)


def test_two_workers_share_a_group(redis_client, keys, make_settings):
    ids = [f"ddn-{n}" for n in range(80)]
    with Receiver(delay=0.01) as receiver:
        publish(redis_client, keys, [item(n) for n in range(80)])
        one = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, NEWSWATCH_WEBHOOK_CONSUMER="one",
                            NEWSWATCH_WEBHOOK_CONCURRENCY="2", **FAST)
        two = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, NEWSWATCH_WEBHOOK_CONSUMER="two",
                            NEWSWATCH_WEBHOOK_CONCURRENCY="2", **FAST)
        with running_worker(redis_client, one) as w1, running_worker(redis_client, two) as w2:
            assert receiver.wait_ids(ids)
            assert wait_for(lambda: pending(redis_client, keys) == 0)
    assert w1.stats["default"]["delivered"] > 0 and w2.stats["default"]["delivered"] > 0
    # nothing failed, so the group hands each entry to exactly one of them
    assert sorted(receiver.ids()) == sorted(ids)
    assert w1.stats["default"]["delivered"] + w2.stats["default"]["delivered"] == 80


def test_an_entry_made_ours_behind_the_workers_back_is_delivered_once(redis_client, keys, make_settings):
    # Pending to the worker's consumer without the worker having read it (as XAUTOCLAIM on Redis 6.2 can
    # leave one): the heartbeat adopts it. Touched by each heartbeat, it never becomes idle enough for a
    # take-over, so the adoption is its only way out.
    with Receiver() as receiver:
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, NEWSWATCH_WEBHOOK_CONSUMER="w", **FAST)
        with running_worker(redis_client, settings) as worker:
            assert wait_for(lambda: redis_client.exists(keys.items) and redis_client.xinfo_groups(keys.items))
            it = item(1)
            # queued and read by another consumer at once: the worker's waiting reads never see it
            pipe = redis_client.pipeline(transaction=True)
            pipe.xadd(keys.items, {"data": json.dumps(it, ensure_ascii=False), "id": it["id"], "url": it["url"]})
            pipe.xreadgroup(keys.group("default"), "other", {keys.items: ">"})
            entry_id, _ = pipe.execute()
            redis_client.xclaim(keys.items, keys.group("default"), "w", min_idle_time=0, message_ids=[entry_id])
            assert receiver.wait_ids(["ddn-1"])
            assert wait_for(lambda: pending(redis_client, keys) == 0)
    assert receiver.ids().count("ddn-1") == 1
    assert worker.stats["default"]["claimed"] == 0  # adopted by the heartbeat, not taken over as stale


def test_a_slow_delivery_does_not_hold_back_the_previous_acknowledgement(redis_client, keys, make_settings):
    # One thread reads the three items at once and acknowledges them with its next request to Redis;
    # after a delivery that took long (the second) it sends what it holds before posting the third.
    with Receiver(plan=[Answer(200), Answer(200, hang=0.6), Answer(200, hang=1.5)]) as receiver:
        publish(redis_client, keys, [item(n) for n in range(3)])
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, NEWSWATCH_WEBHOOK_CONCURRENCY="1", **FAST)
        with running_worker(redis_client, settings):
            assert receiver.wait_count(3)
            assert pending(redis_client, keys) == 1  # the first two acknowledged; the third still posting
            assert wait_for(lambda: pending(redis_client, keys) == 0)
    assert receiver.ids() == ["ddn-0", "ddn-1", "ddn-2"]


def test_same_consumer_name_is_not_shared_by_two_live_workers(redis_client, keys, make_settings):
    with Receiver() as receiver:
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, NEWSWATCH_WEBHOOK_CONSUMER="same", **FAST)
        with running_worker(redis_client, settings) as w1, running_worker(redis_client, settings) as w2:
            assert wait_for(lambda: w1.runners[0].consumer != "same" or w2.runners[0].consumer != "same")
            names = {w1.runners[0].consumer, w2.runners[0].consumer}
    assert len(names) == 2 and "same" in names


def test_sigterm_finishes_the_delivery_in_flight(redis_client, keys, test_env, tmp_path):
    with Receiver(plan=[Answer(200, hang=1.5)]) as receiver:
        publish(redis_client, keys, [item(1)])
        proc = start_worker(test_env, tmp_path, receiver, "term")
        assert receiver.wait_count(1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert pending(redis_client, keys) == 0  # the answer came after the signal and was acknowledged
    assert receiver.ids() == ["ddn-1"]


def test_second_signal_forces_exit(redis_client, keys, test_env, tmp_path):
    with Receiver(plan=[Answer(200, hang=60)]) as receiver:
        publish(redis_client, keys, [item(1)])
        proc = start_worker(test_env, tmp_path, receiver, "force", NEWSWATCH_WEBHOOK_TIMEOUT=60)
        assert receiver.wait_count(1)
        proc.send_signal(signal.SIGTERM)
        assert wait_for(lambda: b"finishing deliveries" in (tmp_path / "worker-force.log").read_bytes())
        time.sleep(SIGNAL_DEBOUNCE + 0.5)  # past the debounce: a second request, not the first delivered twice
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 1
    assert pending(redis_client, keys) == 1  # not acknowledged: delivered again after the next start
    assert not redis_client.exists(keys.consumer_lease("default", "force"))  # the name was given back


def test_acked_floor_is_the_oldest_entry_some_group_still_needs(redis_client, keys, make_settings):
    assert acked_floor(redis_client, keys.items) is None
    entries = publish(redis_client, keys, [item(n) for n in range(4)])
    redis_client.xgroup_create(keys.items, "fast", id="0")
    redis_client.xgroup_create(keys.items, "slow", id="0")
    redis_client.xreadgroup("fast", "c", {keys.items: ">"})
    redis_client.xack(keys.items, "fast", *entries)
    redis_client.xreadgroup("slow", "c", {keys.items: ">"}, count=2)
    redis_client.xack(keys.items, "slow", entries[0])
    assert acked_floor(redis_client, keys.items) == entries[1].decode()  # slow still has entry 1 pending
    redis_client.xack(keys.items, "slow", entries[1])
    ms, seq = entries[1].decode().split("-")
    assert acked_floor(redis_client, keys.items) == f"{ms}-{int(seq) + 1}"  # slow has read up to entry 1
    redis_client.xtrim(keys.items, minid=acked_floor(redis_client, keys.items), approximate=False)
    assert [e[0] for e in redis_client.xrange(keys.items)] == entries[2:]
