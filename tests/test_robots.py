"""robots.txt across passes and its Crawl-delay, through `newswatch crawl` / `newswatch run` and the replica.

robots.txt is kept in Redis for up to 24 h (RFC 9309), so passes — separate processes — fetch it once per
lifetime; after expiry it is asked for again, conditionally. A Crawl-delay spaces the site's requests
within a pass, across passes, and stretches the daemon's schedule when it is longer than the interval.
Expiry is simulated by moving the record's expiry into the past, as 24 hours would; the spacing checks are
lower bounds on the gaps between the requests the replica received (load can only widen them).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from newswatch.defaults import ROBOTS_MAX_AGE, ROBOTS_MIN_AGE
from newswatch.robots import lifetime, site_origin
from tests.loopback import respond
from tests.replica import Replica, corpus, corpus_article, standard_site
from tests.test_crawl_e2e import crawl

# Replica arrival times and the crawler's slot timer are different clocks reading the same moments; a
# request may also sit a little longer in the network than the one before it.
SLACK = 0.15


def robots_fetches(replica) -> list[int]:
    return [status for _, path, status, _ in replica.log if path == "/robots.txt"]


def gaps(replica, paths=None) -> list[float]:
    times = sorted(t for t, path in replica.arrivals if paths is None or path in paths or path.split("?")[0] in paths)
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def expire(redis_client, keys, site_url) -> None:
    """What 24 hours would do: the stored copy's expiry lies in the past (its validators stay)."""
    redis_client.hset(keys.robots(site_origin(site_url)), "expires_at", repr(time.time() - 1))


@pytest.fixture
def site():
    replica, expected = standard_site(per_page=10)
    with replica:
        yield replica, expected


def new_article(n: int):
    return corpus_article(corpus(n + 1)[n], 3999000 + n)


def test_robots_txt_is_fetched_once_across_passes_and_again_after_expiry(site, test_env, redis_client, keys):
    replica, _ = site
    for _ in range(2):  # the second pass, a new process, reads the stored copy
        code, summary, err = crawl(test_env, replica.url)
        assert code == 0, err
    assert robots_fetches(replica) == [200]

    # Within its lifetime a changed robots.txt is not even asked for: the stored copy rules.
    first = new_article(1)
    replica.robots_txt = f"User-agent: *\nDisallow: {first.path}\n"
    replica.add(first)
    assert crawl(test_env, replica.url)[0] == 0
    assert robots_fetches(replica) == [200]
    assert replica.requests[first.path] == 1

    # Expired: asked again (with the stored ETag, which no longer matches); the new rules are obeyed.
    expire(redis_client, keys, replica.url)
    second = new_article(2)
    replica.robots_txt = f"User-agent: *\nDisallow: {second.path}\n"
    replica.add(second)
    replica.reset_counts()
    code, _, err = crawl(test_env, replica.url)
    assert code == 0, err
    assert robots_fetches(replica) == [200]
    assert replica.requests.get(second.path, 0) == 0

    # Expired again with the body unchanged: a 304 keeps the stored copy for another lifetime.
    expire(redis_client, keys, replica.url)
    replica.reset_counts()
    for _ in range(2):
        assert crawl(test_env, replica.url)[0] == 0
    assert robots_fetches(replica) == [304]
    assert redis_client.ttl(keys.robots(site_origin(replica.url))) > ROBOTS_MAX_AGE


def test_robots_txt_lifetime_follows_cache_control_within_bounds():
    assert lifetime(None) == ROBOTS_MAX_AGE
    assert lifetime("public, max-age=7200") == 7200
    assert lifetime("max-age=0") == ROBOTS_MIN_AGE  # never more than one robots.txt request per hour
    assert lifetime("max-age=604800") == ROBOTS_MAX_AGE  # RFC 9309: not more than 24 hours


def test_a_failing_robots_txt_is_not_stored_and_a_stale_copy_stands_in(site, test_env, redis_client, keys):
    replica, _ = site
    later = new_article(3)
    replica.robots_txt = f"User-agent: *\nDisallow: {later.path}\n"
    assert crawl(test_env, replica.url)[0] == 0
    expire(redis_client, keys, replica.url)

    def broken(handler):
        respond(handler, 503, b"")
        return True

    replica.faults["/robots.txt"] = broken
    replica.add(later)
    replica.reset_counts()
    assert crawl(test_env, replica.url)[0] == 0
    assert replica.requests["/robots.txt"] >= 1
    assert replica.requests.get(later.path, 0) == 0  # the stale copy's rule still holds
    replica.faults.clear()
    replica.reset_counts()
    assert crawl(test_env, replica.url)[0] == 0
    assert robots_fetches(replica) == [304]  # still expired (the failure stored nothing): asked again


def small_site(delay: float) -> Replica:
    replica = Replica(per_page=10)
    replica.robots_txt = f"User-agent: *\nCrawl-delay: {delay:g}\n"
    replica.add(corpus_article(corpus(1)[0], 3999100))
    return replica


def test_crawl_delay_spaces_requests_within_and_across_passes(test_env):
    delay = 3.0
    with small_site(delay) as replica:
        for _ in range(2):
            code, summary, err = crawl(test_env, replica.url)
            assert code == 0, err
        paths = [path for _, path in sorted(replica.arrivals)]
    # pass 1: robots.txt, list page 1, list page 2 (past the end), the article; pass 2: list page 1 (304)
    assert paths.count("/robots.txt") == 1 and len(paths) >= 5
    assert min(gaps(replica)) >= delay - SLACK, sorted(replica.arrivals)


def test_crawl_delay_longer_than_the_interval_stretches_the_schedule(test_env, tmp_path):
    delay = 4.0
    with small_site(delay) as replica:
        env = dict(test_env, NEWSWATCH_SITE_URL=replica.url, NEWSWATCH_INTERVAL="1", NEWSWATCH_JITTER="0",
                   NEWSWATCH_LOG_LEVEL="info", NEWSWATCH_DOWNLOAD_DELAY="0", NEWSWATCH_AUTOTHROTTLE="0")
        log_path = tmp_path / "daemon.log"
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen([sys.executable, "-m", "newswatch.cli", "run"], env=env, stdout=log_file,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                deadline = time.monotonic() + 90
                # three list-page requests at the replica: the first pass's and two more passes
                while sum(1 for _, p in replica.arrivals if p.startswith("/international")) < 5:
                    assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
                    time.sleep(0.1)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
        log = log_path.read_text()
    assert proc.returncode == 0, log[-3000:]
    # an interval of 1 s would start a pass every second; the Crawl-delay spaced them instead, and the
    # daemon deferred its revisits rather than starting children that wait
    assert "Crawl-delay has not passed since our last request" in log
    assert min(gaps(replica)) >= delay - SLACK, sorted(replica.arrivals)
