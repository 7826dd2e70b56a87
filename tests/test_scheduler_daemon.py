"""`newswatch run` as real processes against the site replica, a real Redis and a loopback Sentry: the
schedule, the leader lock, loud failures, Redis outages. Stopping is in test_scheduler_stop.py.

Each test starts daemons with a short interval (2 s, no jitter) and a 3 s leader TTL, waits with
generous deadlines for what must happen, and checks the process tree with psutil.
"""

from __future__ import annotations

import json
import signal
import threading
from http.server import ThreadingHTTPServer

import psutil
import redis

from newswatch.history import RunHistory
from tests.daemon_support import DEADLINE, Ok, leader_pid, redis_server, stream_ids
from tests.replica import on_topic_texts, topic_article
from tests.sentry_receiver import SentryReceiver
from tests.waiting import wait_for


def test_scheduled_revisits_queue_new_items_and_check_in(daemons, daemon_env, site, redis_client, keys):
    replica, expected = site
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    hook.deliveries = []
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    with SentryReceiver() as sentry:
        daemon = daemons(dict(daemon_env, SENTRY_DSN=sentry.dsn,
                              NEWSWATCH_WEBHOOK_URL=f"http://127.0.0.1:{hook.server_address[1]}/hook",
                              NEWSWATCH_WEBHOOK_ALLOW_PRIVATE="1",
                              NEWSWATCH_WEBHOOK_SECRET="whsec_dGVzdC1zZWNyZXQtMTIzNDU2"))
        # the first revisit runs at start and queues what is on topic
        assert wait_for(lambda: redis_client.xlen(keys.items) >= len(expected["on_topic"])), daemon.log()
        assert redis_client.get(keys.next_run), "the next run time is published for `status`"
        # a later scheduled revisit finds an article published after the daemon started
        fresh = topic_article(on_topic_texts()[2], 3930700, published="2025年02月20日10:00:00")
        replica.add(fresh)
        assert wait_for(lambda: f"daydaynews-{fresh.id}" in stream_ids(redis_client, keys.items)), daemon.log()
        assert wait_for(lambda: len(RunHistory(redis_client, keys, 50).latest(50)) >= 2)
        assert {run["trigger"] for run in RunHistory(redis_client, keys, 50).latest(50)} == {"schedule"}

        def checkins():
            return [c for c in sentry.checkins() if c.get("monitor_slug") == "newswatch-revisit"]

        assert wait_for(lambda: {"in_progress", "ok"} <= {c["status"] for c in checkins()}), sentry.items()
        first = checkins()[0]
        assert first["monitor_config"]["schedule"] == {"type": "interval", "value": 1, "unit": "minute"}
        done = [c for c in checkins() if c["status"] == "ok"][0]
        assert done["check_in_id"] in {c["check_in_id"] for c in checkins() if c["status"] == "in_progress"}

        # one process tree is the whole service: the alert worker `run` started delivers what was queued
        assert wait_for(lambda: f"daydaynews-{fresh.id}" in hook.deliveries), (hook.deliveries, daemon.log())

        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.log()
    hook.shutdown()
    assert redis_client.get(keys.leader) is None, "the lock is released on a clean stop"


def test_changed_markup_is_a_loud_failure(daemons, daemon_env, site, redis_client, keys):
    replica, _ = site
    for article in list(replica.articles.values()):  # a redesign the profile and the fallback cannot read
        article.layout = "raw"
        article.raw_html = "<!DOCTYPE html><html><body><div id='app'></div><script>render()</script></body></html>"
    replica.add()
    with SentryReceiver() as sentry:
        daemon = daemons(dict(daemon_env, SENTRY_DSN=sentry.dsn, NEWSWATCH_FAILED_RUNS_ALERT="2"))
        assert wait_for(lambda: "silent failure" in daemon.log()), daemon.log()
        assert " ERROR scheduler.revisit: silent failure" in daemon.log()

        def messages():
            out = []
            for event in sentry.events():
                entry = event.get("logentry") or {}
                out.append((event.get("level"), entry.get("formatted") or entry.get("message") or ""))
            return out

        assert wait_for(lambda: any(level == "error" and "silent failure" in text for level, text in messages())), \
            messages()
        assert wait_for(lambda: any(c.get("status") == "error" for c in sentry.checkins())), sentry.checkins()
        # the crawl child reports the same failure from where it is seen (its own error log -> Sentry)
        assert wait_for(lambda: any(level == "error" and "no article extracted" in text
                                    for level, text in messages())), messages()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0


def test_failed_runs_in_a_row_raise_an_alert(daemons, daemon_env, redis_client, keys):
    import socket

    with socket.socket() as sock:  # a port nobody listens on: every revisit fails
        sock.bind(("127.0.0.1", 0))
        dead_site = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with SentryReceiver() as sentry:
        daemon = daemons(dict(daemon_env, SENTRY_DSN=sentry.dsn, NEWSWATCH_SITE_URL=dead_site,
                              NEWSWATCH_FAILED_RUNS_ALERT="2"))
        assert wait_for(lambda: "2 revisits in a row did not succeed" in daemon.log()), daemon.log()
        assert int(redis_client.get(keys.failed_streak)) >= 2
        assert [r["outcome"] for r in RunHistory(redis_client, keys, 10).latest(2)] == ["failed", "failed"]

        def streak_events():
            return [e for e in sentry.events()
                    if "in a row" in ((e.get("logentry") or {}).get("formatted") or "")]

        assert wait_for(streak_events), sentry.events()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0


def test_one_leader_and_takeover_after_sigkill(daemons, daemon_env, hold, redis_client, keys):
    env = dict(daemon_env, NEWSWATCH_DOWNLOAD_TIMEOUT="120")
    first = daemons(env, "a")
    assert wait_for(lambda: leader_pid(redis_client, keys.leader) == first.pid), first.log()
    second = daemons(env, "b")
    assert wait_for(lambda: "standby:" in second.log()), second.log()
    runs_before = len(RunHistory(redis_client, keys, 200).latest(200))
    assert wait_for(lambda: len(RunHistory(redis_client, keys, 200).latest(200)) >= runs_before + 2), first.log()
    # the standby is up and polling, but never schedules while the leader renews
    assert leader_pid(redis_client, keys.leader) == first.pid
    assert "revisit started" not in second.log()
    assert "leader now" not in second.log()

    held = hold()
    assert held.hit.wait(DEADLINE), first.log()  # a revisit is now hanging on the site's list page
    orphan = wait_for(lambda: first.child_running("crawl"))
    assert orphan, first.log()
    first.proc.kill()  # SIGKILL: no release, no clean-up; the lock must expire and the standby take over
    first.proc.wait(timeout=10)
    assert wait_for(lambda: leader_pid(redis_client, keys.leader) == second.pid), second.log()
    assert wait_for(lambda: "revisit started" in second.log()), second.log()
    # the dead leader's crawl was told to stop by the kernel (parent-death signal), not left hanging
    assert wait_for(lambda: not first.leftovers(), timeout=20), [p.cmdline() for p in first.leftovers()]
    held.release.set()
    second.signal(signal.SIGTERM)
    assert second.wait() == 0, second.log()
    assert redis_client.get(keys.leader) is None


def test_overrunning_revisit_is_killed_and_recorded(daemons, daemon_env, hold, redis_client, keys):
    hold()
    daemon = daemons(dict(daemon_env, NEWSWATCH_RUN_TIMEOUT="10", NEWSWATCH_DOWNLOAD_TIMEOUT="120"))
    crawl = wait_for(lambda: daemon.child_running("crawl"))
    assert crawl, daemon.log()

    def timeouts():
        return [r for r in RunHistory(redis_client, keys, 50).latest(50) if r["outcome"] == "timeout"]

    assert wait_for(timeouts), daemon.log()
    assert not crawl.is_running() or crawl.status() == psutil.STATUS_ZOMBIE
    assert "overran its time limit" in daemon.log()
    assert json.loads(redis_client.lindex(keys.runs, 0) or b"{}").get("trigger") == "schedule"
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


def test_unreachable_redis_is_waited_for(daemons, daemon_env):
    daemon = daemons(dict(daemon_env, NEWSWATCH_REDIS_URL="redis://127.0.0.1:1/0"))
    assert wait_for(lambda: daemon.log().count("not reachable") >= 2, timeout=30), daemon.log()
    assert daemon.proc.poll() is None, "the daemon keeps waiting for Redis instead of exiting"
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


def test_redis_outage_while_running_is_survived(daemons, daemon_env, tmp_path, key_prefix):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = redis_server(port, tmp_path)
    try:
        daemon = daemons(dict(daemon_env, NEWSWATCH_REDIS_URL=f"redis://127.0.0.1:{port}/0"))
        client = redis.Redis(port=port)
        assert wait_for(lambda: leader_pid(client, f"{key_prefix}:leader") == daemon.pid), daemon.log()
        server.terminate()
        server.wait(timeout=15)
        assert wait_for(lambda: "not reachable" in daemon.log()), daemon.log()
        assert daemon.proc.poll() is None
        server = redis_server(port, tmp_path)  # back: the daemon reconnects and leads again
        assert wait_for(lambda: leader_pid(client, f"{key_prefix}:leader") == daemon.pid), daemon.log()
        # the lock is taken before "leader now" is logged: wait for the line too (a loaded machine read the
        # log in between once)
        assert wait_for(lambda: daemon.log().count("leader now") >= 2), daemon.log()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.log()
    finally:
        server.kill()
        server.wait(timeout=10)

