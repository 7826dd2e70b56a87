"""The poll that ends an idle pass before Scrapy starts (crawler/poll.py), through `newswatch crawl`.

An idle pass is one conditional request for list page 1, made without importing Scrapy (checked with
Python's own import log); anything to do — a new article, a page to retry — runs the full pass.
"""

from __future__ import annotations

import pytest

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
    # the poll's answer (200) is not kept: the spider asks for list page 1 again
    assert [s for _, p, s, _ in replica.log if p == "/international?page=1"] == [200, 200]


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
