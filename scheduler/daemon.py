"""`newswatch run`: the service. Scheduled revisits while leader, the alert worker, a clean stop.

Reads the settings: the schedule (`interval`, `jitter`, `cron`, `timezone`), `run_timeout`, `leader_ttl`,
`history_size`, `failed_runs_alert`, `metrics_port`, `endpoints` (webhooks), `redis_url`/`data_dir`,
`sentry_dsn`.

Each revisit is a `newswatch crawl` child (scheduler/revisit.py); the alert worker is a child too
(scheduler/alert_child.py); both run in sessions of their own (scheduler/child.py).

Why a leader lock: two `newswatch run` against one Redis must never revisit at the same time. The main
thread holds and renews the lock; the scheduler exists only while it does. Losing the lock (or Redis) stops
the schedule at once and kills the running revisit's process group with SIGKILL at once, not SIGTERM: on
SIGTERM Scrapy waits for its downloads in flight, and the next leader may start its own revisit right away.
Each item is one XADD, so a kill never leaves one half-queued. The standby sleeps until the lock would
expire and then takes it.

Signals (newswatch/shutdown.py, the same rule as `newswatch alerts`): the first SIGTERM/SIGINT is a warm
stop: it stops scheduling, lets the running revisit finish for a short grace, then forwards SIGTERM to it
(Scrapy then stops gracefully: every item already queued stays queued, and none is half-written because
each is one XADD), stops the alert worker, releases the lock, stops the embedded Redis when nobody else
uses it, and exits 0. A second signal is a cold stop: the children's process groups are killed, and the
lock and the embedded Redis are still released and stopped, within a bounded time; exit status 1.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timezone

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from newswatch.addresses import check_endpoints
from newswatch.connection import EmbeddedRedis, check, client_from_url, env_for_child
from newswatch.defaults import MISFIRE_GRACE_TIME
from newswatch.errors import RedisUnavailable, UnsafeEndpoint
from newswatch.masking import mask
from newswatch.observability import CronMonitor, flush
from newswatch.shutdown import Shutdown
from scheduler.alert_child import AlertWorkerChild
from scheduler.child import KILL_GRACE
from scheduler.leader import LeaderLock
from scheduler.overrun import Overruns
from scheduler.revisit import Revisits
from scheduler.schedule import build_trigger, describe
from scheduler.spacing import JOB_ID as DEFERRED_JOB
from scheduler.spacing import defer, site_hold

log = logging.getLogger(__name__)

STOP_GRACE = 5.0          # seconds a running revisit may go on after SIGTERM before it is asked to stop
WARM_BOUND = 120.0        # a warm stop longer than this (every step's own bound added up, and more) turns cold
RECONNECT_FIRST, RECONNECT_MAX = 1.0, 60.0  # backoff while Redis is unreachable


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
        self.monitor = CronMonitor(settings)
        self.metrics = None
        self.child_env = env_for_child(settings)
        self._teardown = threading.Lock()  # the lock release and the server stop, warm or cold: one at a time
        self.revisits = Revisits(settings, self.monitor, lambda: self.client, self.child_env)
        self.worker = AlertWorkerChild(settings, self.child_env)

    # -- the main loop ----------------------------------------------------------------------------------
    def run(self) -> int:
        with self.shutdown:
            for name, step in (("kill the children", self._kill_children),
                               ("release the leader lock and stop the embedded Redis",
                                lambda: self._release_and_stop(grace=2.0))):
                self.shutdown.on_cold(name, step)
            return self._run()

    def _run(self) -> int:
        log.info("newswatch run: revisits %s, run timeout %ss, leader TTL %ss%s", describe(self.settings),
                 self.settings.run_timeout, self.settings.leader_ttl,
                 self.worker.describe(self.settings))
        try:
            while not self.stopping.is_set():
                if self.client is None:
                    self.client = self._connect()
                    if self.client is None:
                        break
                    self._start_metrics()
                self.worker.supervise()
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
        self.revisits.allow()
        overruns = Overruns(describe(self.settings))
        overruns.attach(scheduler)
        self.overruns = overruns
        scheduler.add_job(self._revisit, trigger=build_trigger(self.settings), id="revisit", name="revisit",
                          next_run_time=datetime.now(tz))  # the first revisit right away
        scheduler.start()
        self.scheduler = scheduler

    def _revisit(self) -> None:
        """The revisit job; put off while the site asked for time: its Retry-After after a 429/503, or its
        Crawl-delay (scheduler/spacing.py)."""
        hold, scheduler = site_hold(self.client, self.settings), self.scheduler
        if hold is not None and scheduler is not None:
            defer(scheduler, self._revisit, hold, scheduler.timezone)
            with self.monitor.checkin() as check_in:  # on schedule, as the site asked: not a missed run
                check_in.ok = True
            return
        self.revisits.run()
        self.overruns.report()

    def _step_down(self, why: str) -> None:
        """Stop scheduling at once, and kill a revisit still running: another daemon may lead now."""
        self.leading = False
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        self.revisits.stop_running(why, first=signal.SIGKILL)

    def _next_run_time(self):
        scheduler = self.scheduler
        if scheduler is None:
            return None
        # a revisit put off until the site allows it comes first: the scheduled ones before it are skipped
        job = scheduler.get_job(DEFERRED_JOB) or scheduler.get_job("revisit")
        return job.next_run_time if job is not None else None

    def _publish_next_run(self) -> None:
        when = self._next_run_time()
        if when is not None and self.client is not None:
            # expires with the lock: a dead leader's promise of a next run disappears with it
            self.client.set(self.keys.next_run, when.astimezone(timezone.utc).isoformat(timespec="seconds"),
                            ex=self.settings.leader_ttl)

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
        running = self.revisits.forbid()
        if running is not None:
            self.revisits.current_stop = "forced stop"
            try:
                os.killpg(running.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        procs = [proc for proc in (running, self.worker.kill()) if proc is not None]
        for proc in procs:
            try:
                proc.wait(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                log.error("child %d did not exit after SIGKILL", proc.pid)

    def _release_and_stop(self, grace: float) -> None:
        """Release the leader lock if it is still ours (the release compares the holder id), so a standby
        takes over now instead of after the TTL; then close our connections (they must not count as
        another user of the server) and stop the embedded Redis. One step at a time: a cold stop that
        arrives while the warm one is doing this waits for it, then finds nothing left to do."""
        with self._teardown:
            lock, client = self.lock, self.client
            if lock is not None and client is not None:
                try:
                    if lock.release():
                        client.delete(self.keys.next_run)
                        log.info("released the leader lock")
                except redis.RedisError as exc:
                    log.warning("could not release the leader lock (it expires by itself): %s", exc)
            self._drop_client()
            flush()
            self._stop_embedded(grace)

    def _shutdown(self) -> None:
        self.leading = False
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)  # no new revisit from here on
            self.scheduler = None
        self.revisits.forbid()
        if not self.revisits.idle.wait(STOP_GRACE):
            self.revisits.stop_running("the daemon is stopping")
        self.revisits.idle.wait(KILL_GRACE + STOP_GRACE)  # its record, check-in and streak update
        self.worker.stop()
        if self.metrics is not None:
            self.metrics.shutdown()
        self._release_and_stop(grace=5.0)
        log.info("stopped")

    def _stop_embedded(self, grace: float = 5.0) -> None:
        """`run` owns the embedded server: stop it, unless another process (a standby, a user's own
        consumer) is still connected to it once our children's connections have closed."""
        if self.embedded is not None:
            log.info("stopping the embedded Redis")
            self.embedded.stop(only_if_alone=True, grace=grace)


def run_command(settings) -> int:
    daemon = Daemon(settings)
    if daemon.worker.enabled:
        # the alert worker's own start-up check, here too: an endpoint no delivery may ever reach is bad
        # configuration (exit 2 at start), not a service that runs and never delivers
        try:
            check_endpoints(settings.endpoints)
        except UnsafeEndpoint as exc:
            print(f"newswatch: {exc}", file=sys.stderr)
            return 2
    return daemon.run()
