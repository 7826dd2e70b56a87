"""The alert worker as a child of `newswatch run`: started, restarted with backoff, stopped with the daemon.

Why a child and not threads of the daemon: the worker's delivery threads and HTTP clients must not share a
process with the scheduler, and a worker that exits (a bug, an exhausted Redis retry) is restarted with
backoff without touching the schedule. A worker that exits with status 2 rejected its configuration:
restarting cannot help until `run` is restarted, so it is not restarted.

Reads the settings `endpoints` (webhooks) and `run_alerts` (0: the worker runs as its own service).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time

from scheduler.child import spawn, stop_group

log = logging.getLogger(__name__)

RESTART_FIRST, RESTART_MAX = 1.0, 60.0  # backoff before restarting a worker that keeps exiting


class AlertWorkerChild:
    def __init__(self, settings, child_env: dict):
        self.enabled = bool(settings.endpoints) and settings.run_alerts
        self.child_env = child_env
        self.proc: subprocess.Popen | None = None
        self.backoff = RESTART_FIRST
        self.next_start = 0.0

    def describe(self, settings) -> str:
        if not settings.endpoints:
            return ""
        if not self.enabled:
            return ", no alert worker (NEWSWATCH_RUN_ALERTS=0)"
        return f", alert worker for {len(settings.endpoints)} endpoint(s)"

    def supervise(self) -> None:
        """Start the worker, or restart it after it exited; called on every tick of the daemon."""
        if not self.enabled:
            return
        if self.proc is not None:
            returncode = self.proc.poll()
            if returncode is None:
                return
            self.proc = None
            if returncode == 2:
                log.error("the alert worker rejected its configuration (exit status 2); not restarting it")
                self.enabled = False
                return
            log.error("the alert worker exited with status %s; restarting it in %.0fs", returncode, self.backoff)
            self.next_start = time.monotonic() + self.backoff
            self.backoff = min(self.backoff * 2, RESTART_MAX)
            return
        if time.monotonic() >= self.next_start:
            self.proc = spawn(["alerts"], self.child_env)
            log.info("alert worker started (pid %d)", self.proc.pid)

    def stop(self) -> None:
        """Warm: SIGTERM (the worker finishes its deliveries in flight), SIGKILL after a grace."""
        proc, self.proc = self.proc, None
        if proc is not None:
            log.info("stopping the alert worker (pid %d)", proc.pid)
            stop_group(proc)

    def kill(self) -> subprocess.Popen | None:
        """Cold: SIGKILL to its process group; returns the process so the caller can reap it."""
        proc = self.proc
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return proc
