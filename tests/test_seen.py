"""The seen-URL record: seen pages are skipped until they expire; failing pages are retried, boundedly."""

from __future__ import annotations

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
