"""`newswatch probe` against the site replica on loopback: fields, methods, verdict and exit status."""

from __future__ import annotations

import threading

from crawler.probe import probe_command
from newswatch.cli import main
from tests.loopback import free_port
from tests.replica import SEED_ID, Replica, seed_article, standard_site


def test_probe_of_the_seed_article_passes(make_settings, capsys):
    with standard_site()[0] as replica:
        settings = make_settings(NEWSWATCH_SITE_URL=replica.url)
        status = probe_command(settings, replica.url + f"/international/{SEED_ID}.html")
        out = capsys.readouterr().out
        assert replica.requests["/international?page=1"] == 1
        assert replica.requests[f"/international/{SEED_ID}.html"] == 1
    assert status == 0
    assert "俄副外長放風,美國要主動邁出改善美俄關係第一步" in out
    for line in ("profile:.entry-title::text", "profile:.my-date::text", "2025-02-10T11:20:38+08:00",
                 "profile:.single-content", "profile:.my-cat a::text", "7927", "on topic"):
        assert line in out
    assert out.rstrip().splitlines()[-1].startswith("verdict    OK")


def test_probe_without_url_takes_the_list_page_and_reports_the_generic_fallback(make_settings, capsys):
    replica, expected = standard_site()
    with replica:
        status = probe_command(make_settings(NEWSWATCH_SITE_URL=replica.url), None)
        out = capsys.readouterr().out
        # The newest article has no text at all (a video page): the probe moves on to the next one.
        assert replica.requests[f"/international/{expected['nobody'][0]}.html"] == 1
        assert replica.requests[f"/international/{expected['foreign'][0]}.html"] == 1
        assert replica.article_requests() == 2
    assert status == 1
    verdict = out[out.index("verdict"):]
    assert "body found only by the generic fallback (generic:trafilatura)" in verdict
    assert "crawler/sites/daydaynews.toml" in verdict
    assert "美俄在沙特舉行技術性會談 討論黑海航行安全" in out


def test_probe_passes_on_a_site_whose_newest_article_the_profile_reads(make_settings, capsys):
    replica = Replica()
    replica.add(seed_article())
    with replica:
        assert probe_command(make_settings(NEWSWATCH_SITE_URL=replica.url), None) == 0
    assert "verdict    OK" in capsys.readouterr().out


def test_probe_reports_pages_it_cannot_fetch(make_settings, capsys):
    def unavailable(handler) -> bool:
        handler.send_response(503)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True

    replica = Replica()
    replica.add(seed_article())
    replica.faults["/international"] = unavailable
    with replica:
        status = probe_command(make_settings(NEWSWATCH_SITE_URL=replica.url), replica.url + "/international/1.html")
    out = capsys.readouterr().out
    assert status == 1
    assert "list page not fetched (HTTP 503" in out
    assert "article not fetched (HTTP 404" in out
    assert "fix its selectors" not in out  # nothing says the profile is wrong


def test_probe_gives_up_on_a_server_that_never_answers(make_settings, capsys):
    release = threading.Event()

    def silent(handler) -> bool:
        release.wait(10)
        return True

    replica = Replica()
    replica.faults["/international"] = silent
    try:
        with replica:
            settings = make_settings(NEWSWATCH_SITE_URL=replica.url, NEWSWATCH_DOWNLOAD_TIMEOUT="0.3")
            status = probe_command(settings, None)
    finally:
        release.set()
    assert status == 1
    assert "no answer within 0.3 s" in capsys.readouterr().out


def test_probe_sends_the_configured_user_agent(make_settings, capsys):
    seen: list[str] = []

    def record(handler) -> bool:
        seen.append(handler.headers.get("User-Agent"))
        return False  # then serve the page as usual

    replica = Replica()
    replica.add(seed_article())
    replica.faults["/international"] = record
    with replica:
        probe_command(make_settings(NEWSWATCH_SITE_URL=replica.url, NEWSWATCH_USER_AGENT="probe-test/1.0"), None)
    assert seen == ["probe-test/1.0"]


def test_cli_dispatches_probe(test_env, monkeypatch, capsys):
    with standard_site()[0] as replica:
        for name, value in test_env.items():
            monkeypatch.setenv(name, value)
        status = main(["probe", "--site-url", replica.url, replica.url + f"/international/{SEED_ID}.html"])
    assert status == 0
    assert "verdict    OK" in capsys.readouterr().out


# --- issue 12 point 13: a network failure is named, and the selectors are not blamed --------------------

def _probe(monkeypatch, env: dict, *args: str) -> int:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return main(["probe", *args])


def test_issue12_point13_refused_connection_is_named_not_the_selectors(test_env, monkeypatch, capsys):
    port = free_port()  # nothing listens there
    status = _probe(monkeypatch, test_env, "--site-url", f"http://127.0.0.1:{port}")
    out = capsys.readouterr().out
    assert status == 1
    assert f"connection refused by 127.0.0.1:{port}" in out
    verdict = out[out.index("verdict"):]
    assert "list page not fetched" in verdict and "no article to probe" not in verdict
    assert "selectors" not in verdict and "network or server failure" in verdict


def test_issue12_point13_timeout_on_a_loopback_server_is_named_not_the_selectors(test_env, monkeypatch, capsys):
    release = threading.Event()
    replica = Replica()
    replica.faults["/international"] = lambda handler: release.wait(10)  # accepts, never answers
    try:
        with replica:
            status = _probe(monkeypatch, dict(test_env, NEWSWATCH_DOWNLOAD_TIMEOUT="0.3"),
                            "--site-url", replica.url)
    finally:
        release.set()
    out = capsys.readouterr().out
    assert status == 1 and "no answer within 0.3 s from 127.0.0.1" in out
    assert "selectors" not in out[out.index("verdict"):]


def test_issue12_point13_selectors_are_advised_when_a_fetched_page_missed(test_env, monkeypatch, capsys):
    replica = Replica()
    article = seed_article()
    article.layout = "foreign"  # a redesign: the profile's selectors miss, the generic extractor reads it
    replica.add(article)
    with replica:
        status = _probe(monkeypatch, test_env, "--site-url", replica.url)
    out = capsys.readouterr().out
    verdict = out[out.index("verdict"):]
    assert status == 1 and "fix its selectors in crawler/sites/daydaynews.toml" in verdict
    assert "network" not in verdict
