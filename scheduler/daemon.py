"""`newswatch run`: the service. Scheduled revisits while leader, the alert worker, a clean stop.

Reads the settings: the schedule (`interval`, `jitter`, `cron`, `timezone`), `run_timeout`, `leader_ttl`,
`history_size`, `failed_runs_alert`, `metrics_port`, `endpoints` (webhooks), `redis_url`/`data_dir`,
`sentry_dsn`.

Why a child process per revisit: Scrapy's Twisted reactor cannot be restarted inside one process, and a
child that leaks memory or hangs is simply gone when it exits or is killed with its process group at
`run_timeout`. Each child is `newswatch crawl --json --quiet`, gets the daemon's environment (so it reaches
the same Redis, the embedded one included) and records its own run in the history; the daemon records
only the runs that ended without a summary (timeout, killed, crashed).

Why a leader lock: two `newswatch run` against one Redis must never revisit at the same time. The main
thread holds and renews the lock; the scheduler exists only while it does, and losing the lock stops it
(and the running child) at once. The standby sleeps until the lock would expire and then takes it.

Signals (newswatch/shutdown.py, the same rule as `newswatch alerts`): the first SIGTERM/SIGINT is a warm
stop: it stops scheduling, lets the running revisit finish for a short grace, then forwards SIGTERM to it
(Scrapy then stops gracefully: every item already queued stays queued, and none is half-written because
each is one XADD), stops the alert worker, releases the lock, stops the embedded Redis when nobody else
uses it, and exits 0. A second signal is a cold stop: the children's process groups are killed, and the
lock and the embedded Redis are still released and stopped, within a bounded time; exit status 1.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from newswatch.connection import EmbeddedRedis, check, client_from_url, env_for_child
from newswatch.defaults import MISFIRE_GRACE_TIME
from newswatch.errors import RedisUnavailable
from newswatch.history import RunHistory
from newswatch.masking import mask
from newswatch.observability import CronMonitor, flush
from newswatch.shutdown import Shutdown
from scheduler.child import KILL_GRACE, spawn, stop_group
from scheduler.leader import LeaderLock
from scheduler.schedule import build_trigger, describe

log = logging.getLogger(__name__)

STOP_GRACE = 5.0          # seconds a running revisit may go on after SIGTERM before it is asked to stop
WARM_BOUND = 120.0        # a warm stop longer than this (every step's own bound added up, and more) turns cold
RECONNECT_FIRST, RECONNECT_MAX = 1.0, 60.0  # backoff while Redis is unreachable
WORKER_RESTART_MAX = 60.0  # longest wait before restarting an alert worker that keeps exiting
OK_OUTCOMES = ("ok",)
SUMMARY_COUNTS = ("list_pages", "fetched", "new", "reprints", "off_topic", "errors")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _summary(raw: bytes) -> dict | None:
    """The crawl's JSON summary: the last stdout line that is a JSON object with an outcome."""
    for line in reversed(raw.decode("utf-8", "replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict) and "outcome" in value:
                return value
    return None


class Daemon:
    def __init__(self, settings):
        self.settings = settings
        self.keys = settings.keys
        self.shutdown = Shutdown(warm_message="stopping after the running revisit (send it again to force)",
                                 cold_message="forcing exit: killing the children, releasing the leader lock, "
                                              "stopping the embedded Redis",
                                 warm_bound=WARM_BOUND)
        self.stopping = self.shutdown.requested
        self.client: redis.Redis | None = None
        self.embedded = None
        self.lock: LeaderLock | None = None
        self.leading = False
        self.standby_logged = False
        self.scheduler = None
        self.worker: subprocess.Popen | None = None
        self.worker_backoff = 1.0
        self.worker_disabled = False
        self.worker_next_start = 0.0
        self.current: subprocess.Popen | None = None  # the running revisit child
        self.current_stop: str | None = None          # why the daemon stopped it, if it did
        self.idle = threading.Event()
        self.idle.set()
        self.monitor = CronMonitor(settings)
        self.metrics = None
        self.child_env = env_for_child(settings)

    # -- the main loop ----------------------------------------------------------------------------------
    def run(self) -> int:
        with self.shutdown:
            for name, step in (("kill the children", self._kill_children),
                               ("release the leader lock", self._release_lock),
                               ("stop the embedded Redis", self._cold_stop_embedded)):
                self.shutdown.on_cold(name, step)
            return self._run()

    def _run(self) -> int:
        log.info("newswatch run: revisits %s, run timeout %ss, leader TTL %ss%s", describe(self.settings),
                 self.settings.run_timeout, self.settings.leader_ttl,
                 f", alert worker for {len(self.settings.endpoints)} endpoint(s)" if self.settings.endpoints else "")
        try:
            while not self.stopping.is_set():
                if self.client is None:
                    self.client = self._connect()
                    if self.client is None:
                        break
                    self._start_metrics()
                self._supervise_worker()
                try:
                    wait = self._tick()
                except redis.RedisError as exc:
                    log.warning("Redis error (%s: %s); reconnecting", exc.__class__.__name__, exc)
                    self._step_down("Redis is unreachable")
                    self._drop_client()
                    continue
                self.stopping.wait(wait)
        finally:
            self._shutdown()
        return 0

    def _tick(self) -> float:
        """Acquire or renew the leader lock; returns how long to sleep before the next tick."""
        lock = self.lock
        if self.leading:
            if not lock.renew():
                log.warning("lost the leader lock %s; stopping the schedule", self.keys.leader)
                self._step_down("the leader lock was lost")
                return 0.05
            self._publish_next_run()
            return lock.renew_every
        if lock.acquire():
            log.info("leader now (%s): scheduling revisits", lock.holder)
            self.leading, self.standby_logged = True, False
            self._start_scheduler()
            self._publish_next_run()
            return lock.renew_every
        if not self.standby_logged:
            log.info("standby: %s holds the leader lock; taking over if it stops renewing it",
                     lock.current_holder() or "another instance")
            self.standby_logged = True
        # a standby: sleep until the leader's lock would expire, so a dead leader is replaced within its TTL
        pttl = self.client.pttl(self.keys.leader)
        return min(max(pttl / 1000 + 0.05, 0.05), lock.renew_every) if pttl and pttl > 0 else 0.05

    # -- Redis ------------------------------------------------------------------------------------------
    def _connect(self) -> redis.Redis | None:
        """A client, waiting with backoff while the server is unreachable; None if asked to stop meanwhile."""
        delay, attempt = RECONNECT_FIRST, 0
        ttl = self.settings.leader_ttl
        while not self.stopping.is_set():
            attempt += 1
            try:
                if self.settings.redis_url:
                    url, where = self.settings.redis_url, mask(self.settings.redis_url, True, "redis_url")
                else:
                    self.embedded = self.embedded or EmbeddedRedis(self.settings.data_dir)
                    url = self.embedded.ensure()
                    where = f"{url} (embedded)"
                check(url, where).close()  # one ping without retries: unreachable is one clear line
            except RedisUnavailable as exc:
                log.warning("attempt %d: %s; retrying in %.0fs", attempt, exc, delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            # short timeouts and at most one quick retry: a renewal that hangs longer than the TTL would
            # let a second leader in while this one still believes it leads
            timeout = max(1.0, ttl / 3)
            client = client_from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                     retry=Retry(NoBackoff(), 1))
            if attempt > 1:
                log.info("Redis reachable again after %d attempts", attempt)
            self.lock = LeaderLock(client, self.keys.leader, ttl, holder=self.lock.holder if self.lock else None)
            return client
        return None

    def _drop_client(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except redis.RedisError:
                pass
        self.client = None

    # -- scheduling ---------------------------------------------------------------------------------------
    def _start_scheduler(self) -> None:
        from zoneinfo import ZoneInfo

        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        tz = ZoneInfo(self.settings.timezone)
        # memory job store only: the job is defined here at each start, never unpickled from a stale store
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_TIME},
            timezone=tz)
        scheduler.add_job(self.revisit, trigger=build_trigger(self.settings), id="revisit", name="revisit",
                          next_run_time=datetime.now(tz))  # the first revisit right away
        scheduler.start()
        self.scheduler = scheduler

    def _step_down(self, why: str) -> None:
        """Stop scheduling at once; a revisit still running is stopped too, since another may now lead."""
        was_leading, self.leading = self.leading, False
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        proc = self.current
        if was_leading and proc is not None and proc.poll() is None:
            log.warning("stopping the running revisit (pid %d): %s", proc.pid, why)
            self.current_stop = why
            stop_group(proc)

    def _next_run_time(self):
        scheduler = self.scheduler
        job = scheduler.get_job("revisit") if scheduler is not None else None
        return job.next_run_time if job is not None else None

    def _publish_next_run(self) -> None:
        when = self._next_run_time()
        if when is not None and self.client is not None:
            # expires with the lock: a dead leader's promise of a next run disappears with it
            self.client.set(self.keys.next_run, when.astimezone(timezone.utc).isoformat(timespec="seconds"),
                            ex=self.settings.leader_ttl)

    # -- one revisit (runs in the scheduler's single worker thread) ------------------------------------
    def revisit(self) -> None:
        if not self.leading or self.stopping.is_set():
            return
        self.idle.clear()
        try:
            self._revisit()
        except Exception:  # noqa: BLE001 - a daemon bug must be reported, not end the schedule silently
            log.exception("revisit failed inside the daemon")
        finally:
            self.idle.set()

    def _revisit(self) -> None:
        check_in = self.monitor.started()
        started, started_iso = time.monotonic(), _now_iso()
        outcome, summary, error = self._run_child()
        duration = round(time.monotonic() - started, 3)
        self.monitor.finished(check_in, ok=outcome in OK_OUTCOMES, duration=duration)
        if summary is None:  # the child recorded nothing: record the run here so status shows it
            record = {"id": uuid.uuid4().hex[:12], "trigger": "schedule", "started_at": started_iso,
                      "ended_at": _now_iso(), "duration": duration, "outcome": outcome, "counts": {},
                      "error": error}
            self._redis(lambda c: RunHistory(c, self.keys, self.settings.history_size).record(record))
        self._judge(outcome, summary, error)
        try:
            self._publish_next_run()
        except redis.RedisError:
            pass  # the main loop notices and reconnects

    def _run_child(self) -> tuple[str, dict | None, str | None]:
        env = dict(self.child_env)
        with tempfile.TemporaryFile() as out:
            self.current_stop = None
            if self.stopping.is_set() or not self.leading:  # stopped between the job's start and here
                return "killed", None, "stopped before the revisit started"
            proc = spawn(["crawl", "--json", "--quiet", "--trigger", "schedule"], env, stdout=out, death_signal=signal.SIGKILL)
            self.current = proc
            log.info("revisit started (pid %d)", proc.pid)
            try:
                returncode = proc.wait(timeout=self.settings.run_timeout)
            except subprocess.TimeoutExpired:
                log.error("revisit overran its time limit of %ss; killing its process group",
                          self.settings.run_timeout)
                self.current_stop = "timeout"
                returncode = stop_group(proc, grace=STOP_GRACE)
            finally:
                self.current = None
            out.seek(0)
            summary = _summary(out.read())
        if self.current_stop == "timeout":
            return "timeout", None, f"killed after run_timeout={self.settings.run_timeout}s"
        if summary is not None:
            return summary["outcome"], summary, None
        if self.current_stop or (returncode is not None and returncode < 0):
            return "killed", None, f"stopped: {self.current_stop or f'signal {-returncode}'}"
        what = "bad configuration" if returncode == 2 else "failed"
        return "failed", None, f"{what}: exit status {returncode} without a summary (see the log)"

    def _judge(self, outcome: str, summary: dict | None, error: str | None) -> None:
        """Make silent failures loud: an empty pass, and several failed passes in a row."""
        counts = (summary or {}).get("counts") or {}
        if outcome == "ok":
            previous = self._redis(lambda c: c.getset(self.keys.failed_streak, 0))
            if previous and int(previous) > 0:
                log.info("revisit ok again after %s failed run(s)", int(previous))
            else:
                log.info("revisit ok: %s", ", ".join(f"{k} {counts[k]}" for k in SUMMARY_COUNTS if k in counts))
            return
        if outcome == "empty":
            log.error("silent failure: the revisit fetched %s list page(s) but extracted no article; the site's "
                      "markup may have changed (%s)", counts.get("list_pages", "?"),
                      "; ".join((summary or {}).get("alerts") or []) or "no detail")
        else:
            log.warning("revisit %s: %s", outcome, error or "; ".join((summary or {}).get("alerts") or []))
        streak = self._redis(lambda c: c.incr(self.keys.failed_streak))
        threshold = self.settings.failed_runs_alert
        if streak and streak % threshold == 0:
            # repeated every `threshold` failures, so a long outage keeps reminding without flooding
            log.error("%d revisits in a row did not succeed (last outcome: %s); see `newswatch status`",
                      streak, outcome)

    def _redis(self, call):
        client = self.client
        if client is None:
            return None
        try:
            return call(client)
        except redis.RedisError as exc:
            log.warning("could not update Redis after a revisit: %s", exc)
            return None

    # -- the alert worker ----------------------------------------------------------------------------------
    def _supervise_worker(self) -> None:
        if not self.settings.endpoints or self.worker_disabled:
            return
        if self.worker is not None:
            returncode = self.worker.poll()
            if returncode is None:
                return
            if returncode == 2:  # its configuration is wrong; restarting cannot help until a restart of `run`
                log.error("the alert worker rejected its configuration (exit status 2); not restarting it")
                self.worker_disabled = True
                self.worker = None
                return
            log.error("the alert worker exited with status %s; restarting it in %.0fs",
                      returncode, self.worker_backoff)
            self.worker = None
            self.worker_next_start = time.monotonic() + self.worker_backoff
            self.worker_backoff = min(self.worker_backoff * 2, WORKER_RESTART_MAX)
            return
        if time.monotonic() >= self.worker_next_start:
            self.worker = spawn(["alerts"], self.child_env)
            log.info("alert worker started (pid %d)", self.worker.pid)

    # -- metrics -------------------------------------------------------------------------------------------
    def _start_metrics(self) -> None:
        if self.settings.metrics_port is None or self.metrics is not None:
            return
        from newswatch.metrics import serve  # lazy: prometheus_client is loaded only when metrics are on

        self.metrics = serve(self.settings, client=lambda: self.client, leading=lambda: self.leading)

    # -- stopping ------------------------------------------------------------------------------------------
    def _kill_children(self) -> None:
        """Cold stop: kill the revisit's and the alert worker's process groups, and reap them so their
        connections to the embedded Redis are closed before it is asked to stop."""
        procs = [proc for proc in (self.current, self.worker) if proc is not None]
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in procs:
            try:
                proc.wait(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                log.error("child %d did not exit after SIGKILL", proc.pid)

    def _release_lock(self) -> None:
        """Release the leader lock if it is still ours (the release compares the holder id), so a standby
        takes over now instead of after the TTL."""
        lock, client = self.lock, self.client
        if lock is None or client is None:
            return
        if lock.release():
            client.delete(self.keys.next_run)
            log.info("released the leader lock")

    def _cold_stop_embedded(self) -> None:
        self._drop_client()  # our own connections must not count as another user of the server
        flush()
        self._stop_embedded(grace=2.0)

    def _shutdown(self) -> None:
        was_leading = self.leading
        self.leading = False
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)  # no new revisit from here on
            self.scheduler = None
        if not self.idle.wait(STOP_GRACE):
            proc = self.current
            if proc is not None:
                log.info("asking the running revisit (pid %d) to stop", proc.pid)
                self.current_stop = "the daemon is stopping"
                stop_group(proc)
        self.idle.wait(KILL_GRACE + STOP_GRACE)  # its record, check-in and streak update
        if self.worker is not None:
            log.info("stopping the alert worker (pid %d)", self.worker.pid)
            stop_group(self.worker)
            self.worker = None
        if self.metrics is not None:
            self.metrics.shutdown()
        if self.client is not None and was_leading and self.lock is not None:
            try:
                self.lock.release()
                self.client.delete(self.keys.next_run)
            except redis.RedisError as exc:
                log.warning("could not release the leader lock (it expires by itself): %s", exc)
        self._drop_client()
        flush()
        self._stop_embedded()
        log.info("stopped")

    def _stop_embedded(self, grace: float = 5.0) -> None:
        """`run` owns the embedded server: stop it, unless another process (a standby, a user's own
        consumer) is still connected to it once our children's connections have closed."""
        if self.embedded is not None:
            log.info("stopping the embedded Redis")
            self.embedded.stop(only_if_alone=True, grace=grace)


def run_command(settings) -> int:
    return Daemon(settings).run()
