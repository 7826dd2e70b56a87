"""The poll that ends an idle pass before Scrapy starts (crawler/poll.py), through `newswatch crawl`.

An idle pass is one conditional request for list page 1, made without importing Scrapy (checked with
Python's own import log); anything to do — a new article, a page to retry — runs the full pass.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from email.utils import formatdate

import pytest

from newswatch.robots import site_origin
from tests.loopback import respond
from tests.replica import corpus, corpus_article, standard_site
from tests.test_crawl_e2e import crawl


@pytest.fixture
def site():
    replica, expected = standard_site(per_page=10)
    with replica:
        yield replica, expected


def imported(stderr: str) -> set[str]:
    """Top-level packages named in `python -X importtime` output."""
    out = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            out.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return out


def test_an_idle_pass_is_one_conditional_request_and_does_not_start_scrapy(site, test_env):
    replica, _ = site
    assert crawl(test_env, replica.url)[0] == 0
    replica.reset_counts()
    code, summary, err = crawl({**test_env, "PYTHONPROFILEIMPORTTIME": "1"}, replica.url)
    assert code == 0, err
    assert summary["polled"] is True and summary["outcome"] == "ok"
    assert summary["counts"]["not_modified"] == summary["counts"]["list_pages"] == 1
    assert [(path, status) for _, path, status, _ in replica.log] == [("/international?page=1", 304)]
    modules = imported(err)
    assert "crawler" in modules and "scrapy" not in modules and "twisted" not in modules


def test_a_pass_with_something_new_runs_in_full(site, test_env):
    replica, _ = site
    assert crawl(test_env, replica.url)[0] == 0
    article = corpus_article(corpus(1)[0], 3999300)
    replica.add(article)
    replica.reset_counts()
    code, summary, err = crawl(test_env, replica.url)
    assert code == 0, err
    assert "polled" not in summary
    assert replica.requests[article.path] == 1
    # the poll's answer (200) is handed to the spider: the site sees list page 1 asked once
    assert [s for _, p, s, _ in replica.log if p == "/international?page=1"] == [200]


def test_a_page_waiting_for_a_retry_runs_the_full_pass(site, test_env):
    replica, _ = site
    article = corpus_article(corpus(1)[0], 3999301)
    replica.add(article)
    replica.faults[article.path] = lambda handler: respond(handler, 500, b"oops") or True
    assert crawl(test_env, replica.url)[0] == 0
    replica.faults.clear()
    replica.reset_counts()
    code, summary, err = crawl(test_env, replica.url)
    assert code == 0, err
    assert "polled" not in summary
    assert replica.requests[article.path] == 1  # retried although list page 1 did not change


def test_the_polls_answers_are_the_passs_only_requests_for_list_page_1(site, test_env, redis_client, keys):
    """Two categories, one changed: the poll's 304 and 200 both go to the spider (each list page 1 is asked
    once in the pass), and the validators kept for the next pass are that 200's: the next pass is idle."""
    replica, _ = site
    env = {**test_env, "NEWSWATCH_CATEGORIES": "international,technology"}
    tech = corpus_article(corpus(2)[1], 3999302)
    tech.category, tech.category_name = "technology", "科技"
    replica.add(tech)
    assert crawl(env, replica.url)[0] == 0

    def unchanged(handler):  # the replica's ETags change with any article: this category stays unchanged
        return bool(handler.headers.get("If-None-Match")) and (respond(handler, 304) or True)

    replica.faults["/international?page=1"] = unchanged
    newer = corpus_article(corpus(3)[2], 3999303)
    newer.category, newer.category_name = "technology", "科技"
    replica.add(newer)
    replica.reset_counts()
    code, summary, err = crawl(env, replica.url)
    assert code == 0, err
    assert "polled" not in summary
    first_pages = {p: n for p, n in replica.requests.items() if p.endswith("?page=1")}
    assert first_pages == {"/international?page=1": 1, "/technology?page=1": 1}
    assert [s for _, p, s, _ in replica.log if p == "/technology?page=1"] == [200]
    assert replica.requests[newer.path] == 1
    assert summary["counts"]["not_modified"] == 1 and summary["counts"]["list_pages"] >= 2
    stored = json.loads(redis_client.hget(keys.conditional, f"{replica.url}/technology?page=1"))
    assert stored["etag"] == replica_etag(replica, "technology")

    replica.reset_counts()
    code, summary, err = crawl(env, replica.url)
    assert code == 0, err
    assert summary["polled"] is True
    assert dict(replica.requests) == {"/international?page=1": 1, "/technology?page=1": 1}
    assert [s for _, p, s, _ in replica.log if p == "/technology?page=1"] == [304]


def replica_etag(replica, category: str) -> str:
    """The ETag the replica gives list page 1 of a category now (tests/replica.py)."""
    return '"' + hashlib.sha1(f"{replica.version}:{category}:1".encode()).hexdigest()[:16] + '"'


# --- 429 / 503 to the poll: no request to the site before the Retry-After has passed ----------------------

def refuse(status: int, retry_after: str | None = None):
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return lambda handler: respond(handler, status, b"slow down", headers) or True


def retry_after_key(keys, replica) -> str:
    return keys.retry_after(site_origin(replica.url))


def wait_over(redis_client, keys, replica) -> None:
    """What the passing of the Retry-After would do: the stored time to wait for lies in the past."""
    redis_client.hset(retry_after_key(keys, replica), "until", repr(time.time() - 1))


def site_requests(replica) -> int:
    return sum(replica.requests.values())


def test_a_429_to_the_poll_defers_this_pass_and_the_next_ones(site, test_env, redis_client, keys):
    replica, _ = site
    assert crawl(test_env, replica.url)[0] == 0
    replica.add(corpus_article(corpus(1)[0], 3999304))  # something new: without the 429 a full pass would run
    replica.faults["/international?page=1"] = refuse(429, "600")
    replica.reset_counts()
    asked_at = time.time()
    code, summary, err = crawl({**test_env, "PYTHONPROFILEIMPORTTIME": "1"}, replica.url)
    assert code == 0, err
    assert summary["outcome"] == "deferred"
    assert summary["deferred"]["status"] == 429 and summary["deferred"]["retry_after"] == "600"
    assert summary["deferred"]["asked"] is True
    until = float(redis_client.hget(retry_after_key(keys, replica), "until"))
    assert asked_at + 600 <= until <= time.time() + 600
    assert dict(replica.requests) == {"/international?page=1": 1}  # the Scrapy pass did not ask again...
    assert "scrapy" not in imported(err)  # ...nor even start

    replica.faults.clear()
    replica.reset_counts()
    for extra in ((), ("--baseline",)):  # the next passes, a baseline too, ask nothing before the time
        code, summary, err = crawl(test_env, replica.url, *extra)
        assert summary["outcome"] == "deferred" and summary["deferred"]["asked"] is False, err
        assert "no request to the site before" in err
    assert code == 1  # a baseline that did not run must not look done
    assert site_requests(replica) == 0

    wait_over(redis_client, keys, replica)
    code, summary, err = crawl(test_env, replica.url)
    assert code == 0, err
    assert "polled" not in summary and summary["outcome"] == "ok"
    assert replica.requests["/international?page=1"] == 1
    assert not redis_client.exists(retry_after_key(keys, replica))  # answered: the refusals in a row end


def test_503_with_a_date_and_429_without_retry_after_back_off(site, test_env, redis_client, keys):
    replica, _ = site
    assert crawl(test_env, replica.url)[0] == 0
    waits = []
    for status in (429, 503):  # no Retry-After: a default backoff that doubles with each refusal in a row
        replica.faults["/international?page=1"] = refuse(status)
        code, summary, err = crawl(test_env, replica.url)
        assert code == 0 and summary["outcome"] == "deferred", err
        assert summary["deferred"]["status"] == status and summary["deferred"]["retry_after"] is None
        waits.append(summary["deferred"]["wait"])
        wait_over(redis_client, keys, replica)
    assert waits[0] > 0 and waits[1] == 2 * waits[0]

    when = int(time.time()) + 900
    replica.faults["/international?page=1"] = refuse(503, formatdate(when, usegmt=True))
    replica.reset_counts()
    code, summary, err = crawl(test_env, replica.url)
    assert code == 0 and summary["outcome"] == "deferred", err
    assert summary["deferred"]["until"] == datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert float(redis_client.hget(retry_after_key(keys, replica), "until")) == pytest.approx(when, abs=0.01)
    replica.faults.clear()
    code, summary, err = crawl(test_env, replica.url)
    assert summary["outcome"] == "deferred", err
    assert dict(replica.requests) == {"/international?page=1": 1}
