"""Stopping `newswatch run` (real processes): the warm and the cold stop, a leader that lost its lock,
the alert worker it does or does not start, and a webhook it must refuse at start.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from http.server import ThreadingHTTPServer

import pytest
import redis

from newswatch.connection import EmbeddedRedis
from newswatch.history import RunHistory
from tests.daemon_support import DEADLINE, Ok, alive
from tests.waiting import wait_for


def test_sigterm_stops_everything_and_exits_zero(daemons, daemon_env, hold, tmp_path):
    """Embedded Redis, an alert worker, and a revisit stuck on a slow page when SIGTERM arrives."""
    hold()  # the list page hangs until the test ends
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    env = {k: v for k, v in daemon_env.items() if k != "NEWSWATCH_REDIS_URL"}
    env.update(NEWSWATCH_DATA_DIR=str(tmp_path / "embedded"), NEWSWATCH_DOWNLOAD_TIMEOUT="120",
               NEWSWATCH_WEBHOOK_URL=f"http://127.0.0.1:{hook.server_address[1]}/hook",
               NEWSWATCH_WEBHOOK_ALLOW_PRIVATE="1", NEWSWATCH_WEBHOOK_SECRET="whsec_dGVzdC1zZWNyZXQtMTIzNDU2")
    try:
        daemon = daemons(env)
        crawl = wait_for(lambda: daemon.child_running("crawl"))
        assert crawl, daemon.log()
        worker = wait_for(lambda: daemon.child_running("alerts"))
        assert worker, daemon.log()
        server = EmbeddedRedis(tmp_path / "embedded")
        redis_pid = server.pid()
        assert redis_pid and alive(redis_pid)
        # everything the daemon runs is alive now, each process observed by itself (not from the daemon's
        # own record of its children, which is what is being checked)
        owned = {"crawl": crawl.pid, "alerts": worker.pid, "redis-server": redis_pid}
        assert all(alive(pid) for pid in owned.values()), owned

        # `timeout` and process-group signals deliver one stop request twice at once: still a clean stop
        daemon.signal(signal.SIGTERM)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.log()
        assert "forcing exit" not in daemon.log()
        assert not alive(crawl.pid), "the running revisit was stopped"
        assert not alive(worker.pid), "the alert worker was stopped"
        assert wait_for(lambda: not alive(redis_pid), timeout=15), "the embedded Redis was stopped"
        assert daemon.leftovers() == [], [(p.pid, p.cmdline()) for p in daemon.leftovers()]
        # the daemon's own last word (the alert worker logs its own "… stopped" to the same stderr)
        assert re.search(r" INFO scheduler\.daemon: stopped$", daemon.log(), re.M), daemon.log()
    finally:
        hook.shutdown()


def test_second_signal_forces_exit(daemons, daemon_env, hold):
    hold()
    daemon = daemons(dict(daemon_env, NEWSWATCH_DOWNLOAD_TIMEOUT="120"))
    crawl = wait_for(lambda: daemon.child_running("crawl"))
    assert crawl, daemon.log()
    daemon.signal(signal.SIGINT)
    assert wait_for(lambda: "stopping after the running revisit" in daemon.log())
    time.sleep(1.5)  # a signal within a second of the first is the same request (see SIGNAL_DEBOUNCE)
    daemon.signal(signal.SIGINT)
    assert daemon.wait() != 0
    assert wait_for(lambda: not daemon.leftovers(), timeout=15), daemon.leftovers()


def test_audit_06_second_signal_still_stops_embedded_redis_and_releases_lock(daemons, daemon_env, hold, tmp_path,
                                                                             key_prefix):
    """Issue 12 point 6: a forced stop (second SIGINT during a crawl) stops the embedded redis-server the
    daemon started and releases the leader lock, instead of leaving both behind."""
    from newswatch.defaults import Keys

    hold()
    data = tmp_path / "embedded"
    env = {k: v for k, v in daemon_env.items() if k != "NEWSWATCH_REDIS_URL"}
    # a long TTL: the lock must be gone because it was released, not because it expired
    env.update(NEWSWATCH_DATA_DIR=str(data), NEWSWATCH_DOWNLOAD_TIMEOUT="120", NEWSWATCH_LEADER_TTL="120")
    server = EmbeddedRedis(data)
    try:
        daemon = daemons(env)
        assert wait_for(lambda: daemon.child_running("crawl")), daemon.log()
        redis_pid = server.pid()
        assert redis_pid and alive(redis_pid)
        daemon.signal(signal.SIGINT)
        assert wait_for(lambda: "stopping after the running revisit" in daemon.log())
        time.sleep(1.5)  # past the debounce: this is a second request, not the first delivered twice
        daemon.signal(signal.SIGINT)
        assert daemon.wait() == 1, daemon.log()
        assert wait_for(lambda: not alive(redis_pid), timeout=15), ("redis-server left running", daemon.log())
        assert wait_for(lambda: not daemon.leftovers(), timeout=15), [p.cmdline() for p in daemon.leftovers()]
        client = redis.Redis.from_url(EmbeddedRedis(data).ensure())  # the same data, read back
        try:
            assert client.get(Keys(key_prefix).leader) is None, ("the leader lock was released", daemon.log())
        finally:
            client.close()
    finally:
        server.stop()


def test_audit_07_a_leader_that_lost_the_lock_kills_its_crawl_at_once(daemons, daemon_env, hold, redis_client, keys):
    """Issue 12 point 7: a crawl whose leader lost the lock gets SIGKILL at once (as documented), not SIGTERM
    and a grace during which it would overlap the new leader's revisit."""
    held = hold()
    daemon = daemons(dict(daemon_env, NEWSWATCH_DOWNLOAD_TIMEOUT="120", NEWSWATCH_LEADER_TTL="30",
                          NEWSWATCH_LOG_LEVEL="debug"))  # the crawl logs the signals it receives
    crawl = wait_for(lambda: daemon.child_running("crawl"))
    assert crawl, daemon.log()
    assert held.hit.wait(DEADLINE), daemon.log()  # the crawl runs (Scrapy's signal handlers are in place)
    # another daemon took the lock (this one stalled past its TTL): it must step down
    redis_client.set(keys.leader, "elsewhere:1:takeover", px=30_000)
    assert wait_for(lambda: "lost the leader lock" in daemon.log()), daemon.log()
    assert wait_for(lambda: not alive(crawl.pid), timeout=30), daemon.log()
    assert "Received SIGTERM" not in daemon.log(), "the crawl was asked to stop gracefully, not killed"
    runs = RunHistory(redis_client, keys, 10).latest(10)
    assert wait_for(lambda: any(r["outcome"] == "killed" for r in RunHistory(redis_client, keys, 10).latest(10))), \
        runs
    assert "revisit started" in daemon.log() and daemon.log().count("revisit started") == 1, \
        "no revisit while another holds the lock"
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0, daemon.log()
    assert redis_client.get(keys.leader) == b"elsewhere:1:takeover", "another holder's lock is never released"


def test_audit_05_run_alerts_0_starts_no_alert_worker(daemons, daemon_env, site, redis_client, keys):
    """Issue 12 point 5: with NEWSWATCH_RUN_ALERTS=0 (the compose file's scheduler service) `newswatch run`
    starts no alert worker, even with a webhook configured: the alerts service delivers."""
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    hook.deliveries = []
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        daemon = daemons(dict(daemon_env, NEWSWATCH_RUN_ALERTS="0",
                              NEWSWATCH_WEBHOOK_URL=f"http://127.0.0.1:{hook.server_address[1]}/hook",
                              NEWSWATCH_WEBHOOK_ALLOW_PRIVATE="1"))
        # a revisit has run and queued items; the loop that would start the worker has run many times
        assert wait_for(lambda: RunHistory(redis_client, keys, 10).latest(1) and redis_client.xlen(keys.items)), \
            daemon.log()
        assert wait_for(lambda: daemon.log().count("leader now") and len(RunHistory(redis_client, keys, 10).latest(10)) >= 2)
        assert daemon.child_running("alerts") is None
        assert not any("alerts" in p.cmdline() for p in daemon.seen_children.values() if alive(p.pid)), daemon.log()
        assert "alert worker started" not in daemon.log()
        assert hook.deliveries == []
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.log()
    finally:
        hook.shutdown()


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://[fd00:ec2::254]/hook", "http://0.0.0.0:8080/"])
def test_audit_11_run_refuses_a_webhook_address_never_delivered_to(test_env, url):
    """Issue 12 point 11: `newswatch run` with a webhook address that is always refused ends at start with
    exit status 2 and one clear line, the same line `newswatch alerts` prints, instead of running without
    ever delivering."""
    env = dict(test_env, NEWSWATCH_WEBHOOK_URL=url, NEWSWATCH_WEBHOOK_ALLOW_PRIVATE="1",
               NEWSWATCH_INTERVAL="3600")
    lines = {}
    for command in ("run", "alerts"):
        proc = subprocess.Popen([sys.executable, "-m", "newswatch.cli", command], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _, err = proc.communicate(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        assert proc.returncode == 2, (command, proc.returncode, err)
        assert "Traceback" not in err
        lines[command] = [line for line in err.splitlines() if line.startswith("newswatch:")]
        assert len(lines[command]) == 1, err
    assert lines["run"] == lines["alerts"]
