"""The shared frontier (NEWSWATCH_FRONTIER=redis): a leader and workers crawl one pass through scrapy-redis.

Real `newswatch crawl` processes against the site replica and a real Redis server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from tests.replica import standard_site

pytest.importorskip("scrapy_redis")

FAST = {"NEWSWATCH_DOWNLOAD_DELAY": "0", "NEWSWATCH_AUTOTHROTTLE": "0", "NEWSWATCH_CONCURRENCY": "4",
        "NEWSWATCH_DOWNLOAD_TIMEOUT": "10", "NEWSWATCH_FRONTIER": "redis"}


def start(env: dict, site_url: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "newswatch.cli", "crawl", "--site-url", site_url, "--json",
                             "--quiet", *extra], env={**env, **FAST}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, dict | None, str]:
    out, err = proc.communicate(timeout=120)
    summary = next((json.loads(line) for line in out.splitlines() if line.startswith("{")), None)
    return proc.returncode, summary, err


def test_leader_and_workers_share_one_pass_and_fetch_and_queue_each_article_once(test_env, redis_client, keys):
    replica, expected = standard_site(per_page=4)  # 5 list pages (NEWSWATCH_MAX_PAGES) hold all 18
    with replica:
        workers = [start(test_env, replica.url, "--worker") for _ in range(2)]
        leader = start(test_env, replica.url)
        code, summary, err = finish(leader)
        assert code == 0, err
        results = [finish(w) for w in workers]
    for wcode, wsummary, werr in results:
        assert wcode == 0, werr
        assert wsummary["outcome"] == "worker"
    article_fetches = Counter({p: n for p, n in replica.requests.items() if p.endswith(".html")})
    assert article_fetches and max(article_fetches.values()) == 1
    assert len(article_fetches) == len(replica.articles)
    ids = [fields[b"id"].decode() for _, fields in redis_client.xrange(keys.items)]
    assert len(ids) == len(set(ids))
    queued = {int(i.split("-")[1]) for i in ids}
    # The seed and its reprint are both new in this pass and may be fetched by different processes: either
    # may be queued (DESIGN.md allows it), never both.
    pair = {expected["on_topic"][0], expected["reprint"][0]}
    assert len(queued & pair) == 1
    assert queued - pair == set(expected["on_topic"] + expected["foreign"]) - pair
    # The leader's record is the whole pass's: what every process counted (each its own in its summary),
    # so a pass whose list pages were all fetched by workers is not "failed: no list page could be fetched"
    counts = summary["counts"]
    assert counts["fetched"] == len(replica.articles)
    assert sum(r[1]["counts"]["fetched"] for r in results) <= counts["fetched"]
    list_paths = [p for p in replica.requests if not p.endswith(".html") and p != "/robots.txt"]
    assert counts["list_pages"] == sum(replica.requests[p] for p in list_paths) > 0
    # The pass is closed and only the leader recorded a run.
    assert not redis_client.exists(keys.frontier_pass)
    assert redis_client.llen(keys.runs) == 1


def test_worker_needs_a_shared_frontier(test_env):
    proc = subprocess.run([sys.executable, "-m", "newswatch.cli", "crawl", "--worker"],
                          env={**test_env, "NEWSWATCH_FRONTIER": "memory"}, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "NEWSWATCH_FRONTIER" in proc.stderr
