"""End to end: `newswatch crawl` against the site replica and a real Redis server.

Each crawl is a real `newswatch crawl` process (Scrapy's reactor runs once per process), exactly as the
daemon runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.loopback import respond
from tests.replica import (
    on_topic_texts,
    seed_recommended_titles,
    simplified_reprint,
    standard_site,
    topic_article,
)

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "newswatch/schema/item.schema.json").read_text())
FAST = {"NEWSWATCH_DOWNLOAD_DELAY": "0", "NEWSWATCH_AUTOTHROTTLE": "0", "NEWSWATCH_CONCURRENCY": "8",
        "NEWSWATCH_DOWNLOAD_TIMEOUT": "10"}


def crawl(env: dict, site_url: str, *extra: str) -> tuple[int, dict | None, str]:
    proc = subprocess.run([sys.executable, "-m", "newswatch.cli", "crawl", "--site-url", site_url, "--json",
                           "--quiet", *extra], env={**env, **FAST}, capture_output=True, text=True, timeout=120)
    summary = None
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            summary = json.loads(line)
    return proc.returncode, summary, proc.stderr


def stream_items(client, keys) -> list[dict]:
    out = []
    for _, fields in client.xrange(keys.items):
        item = json.loads(fields[b"data"])
        assert fields[b"id"].decode() == item["id"]
        assert fields[b"url"].decode() == item["url"]
        out.append(item)
    return out


@pytest.fixture
def site():
    replica, expected = standard_site()
    with replica:
        yield replica, expected


def test_first_crawl_queues_exactly_the_new_on_topic_articles(site, test_env, redis_client, keys):
    replica, expected = site
    code, summary, err = crawl(test_env, replica.url)
    assert code == 0, err
    items = stream_items(redis_client, keys)
    queued = {int(i["id"].split("-")[1]) for i in items}
    # The seed and its Simplified-script reprint are both new in this pass: the original (the older id) is
    # queued, the reprint is recorded against it rather than lost.
    assert queued == set(expected["on_topic"] + expected["foreign"])
    reprint_url = f"{replica.url}/international/{expected['reprint'][0]}.html"
    assert reprint_url.encode() in redis_client.lrange(keys.reprints("daydaynews-3930612"), 0, -1)
    counts = summary["counts"]
    assert counts["new"] == len(queued) == len(items)
    assert counts["reprints"] == 1
    assert counts["off_topic"] == len(expected["off_topic"])
    assert counts["no_body"] == len(expected["nobody"])
    assert counts["errors"] == 0
    for item in items:
        jsonschema.validate(item, SCHEMA)
    foreign = next(i for i in items if i["id"] == f"daydaynews-{expected['foreign'][0]}")
    assert "generic" in json.dumps(foreign["extraction"])


def test_item_fields_of_the_seed_article(test_env, redis_client, keys):
    replica, expected = standard_site(reprint=False, off_topic=2)
    with replica:
        site_url = replica.url
        code, summary, err = crawl(test_env, site_url)
    assert code == 0, err
    seed = next(i for i in stream_items(redis_client, keys) if i["id"] == "daydaynews-3930612")
    jsonschema.validate(seed, SCHEMA)
    assert seed["url"] == f"{site_url}/international/3930612.html"
    assert seed["title"] == "俄副外長放風,美國要主動邁出改善美俄關係第一步"
    assert seed["published_at"] == "2025-02-10T11:20:38+08:00"
    assert seed["category"] == "國際"
    assert seed["views"] == 7927
    assert seed["summary"].startswith("美俄遲遲沒有最高接觸")
    assert seed["summary"] not in seed["body"]  # the lead is kept once, as the summary
    assert "天天要聞" not in seed["body"]
    for title in seed_recommended_titles():
        assert title not in seed["body"]
    paragraphs = seed["body"].split("\n")
    assert len(paragraphs) == len(set(paragraphs)) and len(paragraphs) >= 10
    assert seed["topic"]["name"] and seed["topic"]["matched"] and seed["topic"]["score"] > 0
    assert seed["lang"] == "zh-Hant" and seed["source"] == "daydaynews"
    assert seed["images"] and all(url.startswith("https://p3-sign.toutiaoimg.com/") for url in seed["images"])
    assert seed["extraction"]["title"].startswith("profile")


def test_follow_up_is_queued_its_reprint_is_not_and_an_idle_revisit_costs_two_requests(site, test_env, redis_client, keys):
    replica, expected = site
    assert crawl(test_env, replica.url)[0] == 0
    first = len(stream_items(redis_client, keys))

    fixture = next(f for f in on_topic_texts() if f["key"] == "istanbul")
    follow_up = topic_article(fixture, 3930700, published="2025年02月27日22:10:00")
    reprint = simplified_reprint(follow_up, 3930701, fixture)
    replica.add(follow_up, reprint)
    replica.reset_counts()
    code, summary, err = crawl(test_env, replica.url)
    assert code == 0, err
    items = stream_items(redis_client, keys)
    assert [i["id"] for i in items[first:]] == ["daydaynews-3930700"]
    assert summary["counts"]["reprints"] == 1
    # only the two new article pages were fetched
    assert replica.article_requests() == 2

    replica.reset_counts()
    code, summary, err = crawl(test_env, replica.url)
    assert code == 0, err
    assert len(stream_items(redis_client, keys)) == first + 1
    assert replica.article_requests() == 0
    assert sum(replica.requests.values()) <= 2  # robots.txt and the first list page, answered 304
    assert summary["counts"]["not_modified"] == 1


def test_baseline_records_without_queueing(site, test_env, redis_client, keys):
    replica, expected = site
    code, summary, err = crawl(test_env, replica.url, "--baseline")
    assert code == 0, err
    assert redis_client.xlen(keys.items) == 0
    assert redis_client.hlen(keys.seen) >= len(expected["on_topic"])
    assert summary["counts"]["baseline"] == len(expected["on_topic"] + expected["foreign"])

    fixture = next(f for f in on_topic_texts() if f["key"] == "istanbul")
    replica.add(topic_article(fixture, 3930800))
    code, summary, err = crawl(test_env, replica.url)
    assert code == 0, err
    assert [i["id"] for i in stream_items(redis_client, keys)] == ["daydaynews-3930800"]


def test_language_prefixed_and_english_links(test_env, redis_client, keys):
    """/zh-tw/ links fold onto the canonical URL (fetched once); /en/ pages are other articles, not fetched."""
    replica, _ = standard_site(off_topic=0)
    fixture = on_topic_texts()[2]
    article = topic_article(fixture, 3931000)
    replica.add(article)
    page = replica.render_list("international", 1).replace(
        '<main class="list">',
        '<main class="list"><article><h2 class="entry-title"><a href="/zh-tw/international/3931000.html?from=tw#top">'
        'tw</a></h2></article><article><h2 class="entry-title"><a href="/en/international/3931001.html">en</a>'
        '</h2></article>')

    def list_page(handler):
        data = page.encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        return True

    replica.faults["/international?page=1"] = list_page
    with replica:
        code, summary, err = crawl(test_env, replica.url)
    assert code == 0, err
    ids = [i["id"] for i in stream_items(redis_client, keys)]
    assert ids.count("daydaynews-3931000") == 1
    assert not any(path.startswith("/en/") for path in replica.requests)
    assert not any(path.startswith("/zh-tw/") for path in replica.requests)


def test_site_url_with_a_path_is_a_configuration_error(test_env):
    code, summary, err = crawl(test_env, "http://127.0.0.1:9/news")
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and "NEWSWATCH_SITE_URL" in lines[0] and "Traceback" not in err


def test_unreachable_site_fails_with_exit_1(test_env):
    code, summary, err = crawl({**test_env, "NEWSWATCH_RETRY_TIMES": "0"}, "http://127.0.0.1:9")
    assert code == 1
    assert summary["outcome"] == "failed"
    assert "could not be crawled" in err and "Traceback" not in err


def test_markup_change_is_reported_as_empty(test_env, redis_client, keys):
    replica, _ = standard_site(off_topic=3)
    for article in list(replica.articles.values()):
        article.layout = "raw"
        article.raw_html = "<html><body><div id='app'></div><script>render()</script></body></html>"
    with replica:
        code, summary, err = crawl(test_env, replica.url)
    assert code == 0
    assert summary["outcome"] == "empty"
    assert any("no article extracted" in a for a in summary["alerts"])
    assert "crawl alert" in err
    assert redis_client.xlen(keys.items) == 0


def test_article_is_recorded_in_the_run_history(site, test_env, redis_client, keys):
    replica, _ = site
    crawl(test_env, replica.url)
    runs = [json.loads(r) for r in redis_client.lrange(keys.runs, 0, -1)]
    assert len(runs) == 1 and runs[0]["outcome"] == "ok" and runs[0]["counts"]["new"] >= 1
    assert runs[0]["trigger"] == "manual"


def test_issue12_point4_one_article_under_two_category_slugs_is_queued_once(test_env, redis_client, keys):
    """The site serves an article under more than one category slug (/international/N.html, /world/N.html):
    one article id, one stream entry, whether both URLs turn up in one pass or the second in a later one."""
    replica, _ = standard_site(off_topic=0, reprint=False)
    fixture = next(f for f in on_topic_texts() if f["key"] == "istanbul")
    twice = topic_article(fixture, 3931100)
    replica.add(twice)
    world_list = replica.render_list("international", 1).replace(
        '<main class="list">', '<main class="list"><article><h2 class="entry-title"><a href="/world/3931100.html">'
        'w</a></h2></article>')

    def serve(page: str):
        def fault(handler):
            respond(handler, 200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})
            return True
        return fault

    replica.faults["/world/3931100.html"] = serve(replica.render_article(twice))
    env = dict(test_env, NEWSWATCH_CATEGORIES="international,world")
    with replica:
        replica.faults["/world?page=1"] = serve(world_list)
        code, summary, err = crawl(env, replica.url)
        assert code == 0, err
        assert replica.requests["/world/3931100.html"] == 1 and replica.requests["/international/3931100.html"] == 1
        ids = [i["id"] for i in stream_items(redis_client, keys)]
        assert ids.count("daydaynews-3931100") == 1 and len(ids) == len(set(ids))

        # A later pass that meets the article under its other slug only: recorded, not queued again.
        redis_client.delete(keys.items, keys.conditional)
        redis_client.hdel(keys.seen, f"{replica.url}/world/3931100.html")
        code, summary, err = crawl(env, replica.url)
        assert code == 0, err
        assert replica.requests["/world/3931100.html"] == 2
        assert redis_client.xlen(keys.items) == 0
        assert redis_client.hexists(keys.seen, f"{replica.url}/world/3931100.html")
