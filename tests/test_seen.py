"""The seen-URL record: seen pages are skipped until they expire; failing pages are retried, boundedly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crawler.seen import SeenRecord

URL = "http://127.0.0.1:1/international/{}.html"


def test_seen_urls_are_skipped_until_they_expire(redis_client, keys):
    seen = SeenRecord(redis_client, keys, seen_days=2, max_failures=3)
    urls = [URL.format(n) for n in range(5)]
    seen.mark_seen(urls[0], now=1_000_000)
    seen.mark_seen(urls[1], now=1_000_000)
    assert seen.unseen(urls, now=1_000_000 + 3600) == urls[2:]
    assert seen.count() == 2
    later = 1_000_000 + 2 * 86400 + 1
    assert seen.unseen(urls, now=later) == urls  # expired entries are fetched again
    assert seen.sweep(now=later) == 2 and seen.count() == 0


def test_failed_pages_are_retried_a_bounded_number_of_times(redis_client, keys):
    seen = SeenRecord(redis_client, keys, seen_days=2, max_failures=3)
    url = URL.format(7)
    for expected in (1, 2):
        assert seen.mark_failed(url) == expected
        assert seen.unseen([url]) == [url]
        assert seen.retryable("http://127.0.0.1:1") == [url]
    seen.mark_failed(url)
    assert seen.unseen([url]) == [] and seen.given_up([url]) == [url]
    assert seen.retryable("http://127.0.0.1:1") == []
    seen.mark_seen(url)  # a later success clears the failures
    assert seen.given_up([url]) == []


def test_retryable_only_under_the_site(redis_client, keys):
    seen = SeenRecord(redis_client, keys, seen_days=1, max_failures=3)
    seen.mark_failed("http://other.example/international/1.html")
    assert seen.retryable("http://127.0.0.1:1") == []


def test_bad_bounds_are_refused(redis_client, keys):
    with pytest.raises(ValueError):
        SeenRecord(redis_client, keys, seen_days=0, max_failures=3)


def test_sweep_forgets_old_item_ids_too(redis_client, keys):
    seen = SeenRecord(redis_client, keys, seen_days=1, max_failures=3)
    redis_client.hset(keys.seen_items, mapping={"daydaynews-1": 1000, "daydaynews-2": 1000 + 86400})
    seen.sweep(now=1000 + 86400 + 1)
    assert redis_client.hkeys(keys.seen_items) == [b"daydaynews-2"]


def test_issue12_point4_seen_days_below_dedupe_retention_is_refused(test_env):
    env = dict(test_env, NEWSWATCH_SEEN_DAYS="7", NEWSWATCH_DEDUPE_RETENTION_DAYS="30")
    for command in (["config"], ["crawl", "--quiet"]):
        proc = subprocess.run([sys.executable, "-m", "newswatch.cli", *command], env=env, capture_output=True,
                              text=True, timeout=60)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert "NEWSWATCH_SEEN_DAYS" in lines[0] and "NEWSWATCH_DEDUPE_RETENTION_DAYS" in lines[0]
    proc = subprocess.run([sys.executable, "-m", "newswatch.cli", "config"], capture_output=True, text=True,
                          env=dict(env, NEWSWATCH_SEEN_DAYS="30"), timeout=60)
    assert proc.returncode == 0, proc.stderr
