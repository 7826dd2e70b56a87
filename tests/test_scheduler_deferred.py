"""A site that asks for time (429/503, Retry-After) as the service sees it: `newswatch run` against the site
replica, a real Redis and a loopback Sentry (scheduler/revisit.py, scheduler/spacing.py).

A deferred pass (crawler/run.py, newswatch/retry_after.py) is the service doing what the site asked, not a
failure: it is logged in one line naming the time, it neither counts in nor ends the failed streak, and its
Sentry check-in is `ok`. Each test fills the robots.txt record first with one `newswatch crawl`, so that the
daemon's passes open with the poll, which is what meets the refusal.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from datetime import datetime, timezone

from newswatch.history import RunHistory
from newswatch.metrics import serve
from newswatch.retry_after import RetryAfterRecord
from newswatch.robots import site_origin
from newswatch.status import collect, render
from tests.loopback import respond
from tests.sentry_receiver import SentryReceiver
from tests.test_crawl_e2e import crawl
from tests.waiting import wait_for

LIST_PAGE_1 = "/international?page=1"


def refuse(status: int, retry_after: str | None = None):
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return lambda handler: respond(handler, status, b"slow down", headers) or True


def runs(client, keys) -> list[dict]:
    """The daemon's runs, newest first (not the `newswatch crawl` that filled the robots.txt record)."""
    return [run for run in RunHistory(client, keys, 200).latest(200) if run.get("trigger") == "schedule"]


def revisit_checkins(sentry: SentryReceiver) -> list[dict]:
    return [c for c in sentry.checkins() if c.get("monitor_slug") == "newswatch-revisit"]


def test_a_deferred_revisit_is_logged_as_such_and_is_not_a_failure(daemons, daemon_env, site, redis_client, keys):
    replica, _ = site
    assert crawl(daemon_env, replica.url)[0] == 0
    # each refusal asks for one second: every scheduled revisit (2 s apart) asks again and is refused again
    replica.faults[LIST_PAGE_1] = refuse(429, "1")
    with SentryReceiver() as sentry:
        daemon = daemons(dict(daemon_env, SENTRY_DSN=sentry.dsn, NEWSWATCH_FAILED_RUNS_ALERT="2"))
        assert wait_for(lambda: sum(r["outcome"] == "deferred" for r in runs(redis_client, keys)) >= 2), daemon.log()
        assert wait_for(lambda: "refused 2 requests in a row" in daemon.log()), daemon.log()
        assert wait_for(lambda: sum(c["status"] == "ok" for c in revisit_checkins(sentry)) >= 2), sentry.checkins()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.log()
        log = daemon.log()
        statuses = [c["status"] for c in revisit_checkins(sentry)]
    # one line that says what the site asked for, and nothing empty after a colon
    assert " scheduler.revisit: revisit deferred: the site asked for no request before " in log, log
    assert "(it answered 429, Retry-After: 1)" in log
    assert "revisit deferred: \n" not in log
    # not a failure of ours: no failed streak, no error check-in; only a site that keeps refusing is an alert
    assert int(redis_client.get(keys.failed_streak) or 0) == 0
    assert "did not succeed" not in log
    assert "error" not in statuses, statuses
    assert " ERROR scheduler.revisit: the site has refused 2 requests in a row" in log


def test_no_revisit_starts_while_the_site_asked_for_time_and_one_starts_when_it_has_passed(
        daemons, daemon_env, site, redis_client, keys):
    replica, _ = site
    assert crawl(daemon_env, replica.url)[0] == 0
    replica.faults[LIST_PAGE_1] = refuse(503, "3600")
    replica.reset_counts()
    with SentryReceiver() as sentry:
        daemon = daemons(dict(daemon_env, SENTRY_DSN=sentry.dsn))  # a revisit due every 2 s
        assert wait_for(lambda: runs(redis_client, keys)), daemon.log()
        until = float(redis_client.hget(retry_after_key(keys, replica), "until"))
        # scheduled times come and go (each checks in ok: on schedule, not missed) and start no child
        assert wait_for(lambda: sum(c["status"] == "ok" for c in revisit_checkins(sentry)) >= 4), sentry.checkins()
        assert [r["outcome"] for r in runs(redis_client, keys)] == ["deferred"]
        assert daemon.log().count("revisit started") == 1
        assert dict(replica.requests) == {LIST_PAGE_1: 1}
        assert "error" not in {c["status"] for c in revisit_checkins(sentry)}
        # the next run is the moment the site named, for `status` and the metrics
        assert wait_for(lambda: next_run(redis_client, keys) == iso(until)), (next_run(redis_client, keys), iso(until))
        assert f"next revisit at {iso(until)}" in daemon.log()

        # the site's time is (nearly) over: the pass is scheduled for that moment, and not before it
        replica.faults.clear()
        until = time.time() + 4  # two scheduled times at least: one of them moves the deferral
        redis_client.hset(retry_after_key(keys, replica), "until", repr(until))
        assert wait_for(lambda: len(runs(redis_client, keys)) == 2), daemon.log()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.log()
    latest = runs(redis_client, keys)[0]
    assert latest["outcome"] == "ok", latest
    assert datetime.fromisoformat(latest["started_at"].replace("Z", "+00:00")).timestamp() >= int(until)
    assert f"next revisit at {iso(until)}" in daemon.log()
    assert replica.requests[LIST_PAGE_1] == 2


def retry_after_key(keys, replica) -> str:
    return keys.retry_after(site_origin(replica.url))


def next_run(client, keys) -> str | None:
    value = client.get(keys.next_run)
    return value.decode() if value else None


def iso(when: float) -> str:
    return datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="seconds")


def test_status_and_metrics_show_a_deferral(redis_client, keys, make_settings):
    settings = make_settings(NEWSWATCH_SITE_URL="http://127.0.0.1:9", NEWSWATCH_METRICS_PORT="0")
    assert collect(redis_client, settings)["deferral"] is None
    deferral = RetryAfterRecord(redis_client, keys, settings.site_url).refused(429, "600")
    RunHistory(redis_client, keys, 10).record({
        "id": "r", "trigger": "schedule", "outcome": "deferred", "deferred": deferral.summary(True),
        "counts": {"list_pages": 0, "fetched": 0, "requests": 1}, "duration": 0.4,
        "started_at": iso(time.time() - 1), "ended_at": iso(time.time())})

    figures = collect(redis_client, settings)
    until = iso(deferral.until).replace("+00:00", "Z")
    assert figures["deferral"] == {"until": until, "status": 429, "retry_after": "600", "wait": 600.0,
                                   "refusals": 1}
    json.dumps(figures)  # what `status --json` prints
    shown = render(figures).splitlines()
    line = next(line for line in shown if line.startswith("deferred "))
    assert f"no request to the site before {until} (in " in line
    assert "it answered 429 (Retry-After: 600), 1 refusal in a row" in line
    run = next(line for line in shown if " deferred " in line and "schedule" in line)
    assert f"no request before {until}" in run and "429" in run

    server = serve(settings, client=lambda: redis_client, leading=lambda: True, addr="127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=30) as answer:
            lines = set(answer.read().decode().splitlines())
    finally:
        server.shutdown()
    assert 'newswatch_history_runs{outcome="deferred"} 1.0' in lines
    assert "newswatch_last_run_success 1.0" in lines  # the site asked for time: not a failed run
    assert any(line.startswith("newswatch_deferred_until_timestamp_seconds ")
               and float(line.split()[1]) == int(deferral.until) for line in lines), sorted(lines)


def test_a_429_inside_a_scrapy_pass_holds_later_passes_until_the_next_answer(site, test_env, redis_client, keys):
    replica, _ = site
    env = dict(test_env, NEWSWATCH_RETRY_AFTER_CAP="1", NEWSWATCH_RETRY_TIMES="1")
    # a first pass has no robots.txt record: the poll steps aside and Scrapy meets the 429 itself, waits the
    # cap (1 s, not the 600 asked for) within the pass, is refused again and gives up
    replica.faults[LIST_PAGE_1] = refuse(429, "600")
    asked_at = time.time()
    code, summary, err = crawl(env, replica.url)
    assert summary["outcome"] == "failed" and replica.requests[LIST_PAGE_1] == 2, err
    record = redis_client.hgetall(retry_after_key(keys, replica))
    assert record[b"status"] == b"429" and record[b"retry_after"] == b"600", record
    assert asked_at + 600 <= float(record[b"until"]) <= time.time() + 600
    replica.faults.clear()
    replica.reset_counts()
    code, summary, err = crawl(env, replica.url)  # the next pass honours the whole 600 s: no request at all
    assert summary["outcome"] == "deferred" and summary["deferred"]["asked"] is False, err
    assert sum(replica.requests.values()) == 0

    # the time has passed; a pass that does not poll (a baseline) is refused once, waits the cap, and the
    # site's next answer (to a request sent after the refusal) ends the refusals: no record is left
    redis_client.hset(retry_after_key(keys, replica), "until", repr(time.time() - 1))
    sent = []
    replica.faults[LIST_PAGE_1] = lambda handler: not sent and (sent.append(1) or refuse(429, "30")(handler))
    code, summary, err = crawl(env, replica.url, "--baseline")
    assert code == 0 and summary["outcome"] == "ok", err
    assert sent and summary["counts"]["retry_after"] == 1
    assert not redis_client.exists(retry_after_key(keys, replica))
