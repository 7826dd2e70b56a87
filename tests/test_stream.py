"""The item stream: one entry per article however often it is published; trimming keeps undelivered items."""

from __future__ import annotations

import json
import threading

from crawler.stream import Publisher, trim


def _item(n: int) -> dict:
    return {"id": f"daydaynews-{n}", "url": f"http://127.0.0.1:1/international/{n}.html", "title": "t"}


def test_publish_once_and_mark_seen(redis_client, keys):
    publisher = Publisher(redis_client, keys)
    redis_client.hset(keys.failures, _item(1)["url"], 2)
    assert publisher.publish(_item(1)) is True
    assert publisher.publish(_item(1)) is False
    (entry_id, fields), = redis_client.xrange(keys.items)
    assert json.loads(fields[b"data"])["id"] == "daydaynews-1"
    assert fields[b"id"] == b"daydaynews-1" and fields[b"url"] == _item(1)["url"].encode()
    assert redis_client.hexists(keys.seen, _item(1)["url"])
    assert not redis_client.hexists(keys.failures, _item(1)["url"])


def test_baseline_records_without_queueing(redis_client, keys):
    assert Publisher(redis_client, keys).publish(_item(2), queue=False) is True
    assert redis_client.xlen(keys.items) == 0 and redis_client.hexists(keys.seen, _item(2)["url"])


def test_racing_publishers_queue_one_entry(redis_client, keys):
    barrier = threading.Barrier(8)
    results = []

    def race():
        publisher = Publisher(redis_client, keys)
        barrier.wait()
        results.append(publisher.publish(_item(3)))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert redis_client.xlen(keys.items) == 1


def test_trim_keeps_what_a_group_has_not_acknowledged(redis_client, keys):
    publisher = Publisher(redis_client, keys)
    for n in range(10):
        publisher.publish(_item(100 + n))
    ids = [entry_id for entry_id, _ in redis_client.xrange(keys.items)]
    redis_client.xgroup_create(keys.items, "alerts:a", id="0")
    redis_client.xgroup_create(keys.items, "mine", id="0")
    # group a read and acknowledged everything; group "mine" read 4 and acknowledged 2
    for entry_id, _ in redis_client.xreadgroup("alerts:a", "c", {keys.items: ">"})[0][1]:
        redis_client.xack(keys.items, "alerts:a", entry_id)
    read = redis_client.xreadgroup("mine", "c", {keys.items: ">"}, count=4)[0][1]
    redis_client.xack(keys.items, "mine", read[0][0], read[1][0])

    far_future = 10**10  # every entry is older than the retention
    removed = trim(redis_client, keys, retention_days=1, now=far_future)
    assert removed == 2
    assert [e for e, _ in redis_client.xrange(keys.items)] == ids[2:]

    # within the retention nothing goes, acknowledged or not
    for entry_id, _ in redis_client.xreadgroup("mine", "c", {keys.items: ">"})[0][1]:
        redis_client.xack(keys.items, "mine", entry_id)
    redis_client.xack(keys.items, "mine", read[2][0], read[3][0])
    assert trim(redis_client, keys, retention_days=365) == 0
    assert redis_client.xlen(keys.items) == 8
    assert trim(redis_client, keys, retention_days=1, now=far_future) == 8


def test_trim_without_groups_goes_by_age(redis_client, keys):
    Publisher(redis_client, keys).publish(_item(200))
    assert trim(redis_client, keys, retention_days=1) == 0
    assert trim(redis_client, keys, retention_days=1, now=10**10) == 1


def test_issue12_point4_one_article_under_two_slugs_is_queued_once(redis_client, keys):
    publisher = Publisher(redis_client, keys)
    world = dict(_item(4), url="http://127.0.0.1:1/world/4.html")
    assert publisher.publish(_item(4)) is True
    assert publisher.publish(world) is False
    assert redis_client.xlen(keys.items) == 1
    # The other URL of the article is recorded as seen: it is not fetched again.
    assert redis_client.hexists(keys.seen, world["url"])
    assert redis_client.hexists(keys.seen_items, "daydaynews-4")
