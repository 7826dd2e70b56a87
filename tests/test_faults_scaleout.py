"""Scale-out: several crawler processes against one Redis (docs/faults.md, "Running several crawlers").

Two `newswatch crawl` processes start at the same moment against the same replica and the same Redis.
Nothing coordinates them but what they share in Redis — the seen-URL record, the fingerprint index and the
stream, with the atomic check-and-insert (crawler/dedupe.py) and check-and-XADD (crawler/stream.py) — and
each new article must still be queued exactly once, its reprint not at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

from tests.replica import standard_site
from tests.test_crawl_e2e import stream_items
from tests.test_faults_site import FAST


def two_crawls_at_once(test_env, replica) -> list[dict]:
    """Start two `newswatch crawl --json` processes at the same moment; their summaries."""

    def slow(h):
        time.sleep(0.5)  # both passes are mid-crawl at the same time, not one after the other
        return False

    for article in replica.articles.values():
        replica.faults[article.path] = slow
    env = {**test_env, **FAST, "NEWSWATCH_CONCURRENCY": "4"}
    cmd = [sys.executable, "-m", "newswatch.cli", "crawl", "--site-url", replica.url, "--json", "--quiet"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in procs]
    summaries = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        summaries.append(json.loads(next(line for line in out.splitlines() if line.startswith("{"))))
    # They really overlapped: both fetched article pages (the first did not finish before the second began).
    assert all(s["counts"]["fetched"] > 0 for s in summaries)
    return summaries


def test_two_crawlers_at_once_queue_each_new_article_once(test_env, redis_client, keys):
    replica, expected = standard_site()
    with replica:
        site = replica.url
        summaries = two_crawls_at_once(test_env, replica)
    ids = [item["id"] for item in stream_items(redis_client, keys)]
    wanted = expected["on_topic"] + expected["foreign"]
    assert Counter(ids) == Counter(f"daydaynews-{n}" for n in wanted)  # each exactly once, no reprint
    assert sum(s["counts"]["new"] for s in summaries) == len(wanted)
    # The reprint is remembered against its original (by whichever process met it first, or both).
    reprints = redis_client.lrange(keys.reprints(f"daydaynews-{expected['on_topic'][0]}"), 0, -1)
    assert f"{site}/international/{expected['reprint'][0]}.html".encode() in reprints


def test_a_racing_crawler_records_a_reprint_once_and_never_the_original(test_env, redis_client, keys):
    """The race, made deterministic: the second crawler read the list pages before the first marked any
    article seen, so it fetches and processes the same articles after the first one queued them."""
    replica, expected = standard_site(per_page=30)  # one list page: the second crawler fetches all
    with replica:
        site = replica.url
        first = subprocess.run([sys.executable, "-m", "newswatch.cli", "crawl", "--site-url", site, "--quiet"],
                               env={**test_env, **FAST}, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        # What the second crawler saw: no article seen when it read the list page; by the time it fetched
        # the articles the first one had queued them (and marked them seen).
        saved = redis_client.hgetall(keys.seen)
        redis_client.delete(keys.seen, keys.conditional)

        def first_one_has_published(h):
            redis_client.hset(keys.seen, mapping=saved)
            return False  # then answer normally

        for article in replica.articles.values():
            replica.faults[article.path] = first_one_has_published
        second = subprocess.run([sys.executable, "-m", "newswatch.cli", "crawl", "--site-url", site, "--quiet"],
                                env={**test_env, **FAST}, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
    wanted = expected["on_topic"] + expected["foreign"]
    assert Counter(i["id"] for i in stream_items(redis_client, keys)) == Counter(f"daydaynews-{n}" for n in wanted)
    reprints = redis_client.lrange(keys.reprints(f"daydaynews-{expected['on_topic'][0]}"), 0, -1)
    assert reprints == [f"{site}/international/{expected['reprint'][0]}.html".encode()]
