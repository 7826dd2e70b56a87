"""One scheduled revisit: a `newswatch crawl` child, its time limit, its record, and making failures loud.

Why a child process per revisit: Scrapy's Twisted reactor cannot be restarted inside one process, and a
child that leaks memory or hangs is simply gone when it exits or is killed with its process group at
`run_timeout`. Each child is `newswatch crawl --json --quiet`, gets the daemon's environment (so it reaches
the same Redis, the embedded one included) and records its own run in the history; this module records
only the runs that ended without a summary (timeout, killed, crashed).

Who may start a child: only a leader that is not stopping. `allow()` and `forbid()` switch that, and a
revisit checks it, spawns its child and records it as `current` under one lock, so a step-down either
happens before the check (no child) or finds the child recorded (and stops it) — never in between.

A `deferred` pass (the site answered 429/503 and asked for time: newswatch/retry_after.py) is the service
doing what the site asked, not a failure: one line says until when, the failed streak is left as it was
(neither counted nor ended), and the Sentry check-in is `ok`. What stays loud is a site that keeps
refusing: every `failed_runs_alert` refusals in a row (the record's count) log an error.

Reads the settings `run_timeout`, `history_size`, `failed_runs_alert` (and the Sentry cron monitor's).
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone

import redis

from newswatch.history import RunHistory
from newswatch.retry_after import asked_for
from scheduler.child import spawn, stop_group

log = logging.getLogger(__name__)

STOP_GRACE = 5.0  # seconds an overrunning revisit gets between SIGTERM and SIGKILL
OK_OUTCOMES = ("ok", "deferred")  # the Sentry check-in's `ok`: a pass the site asked to wait ran as meant
SUMMARY_COUNTS = ("list_pages", "fetched", "new", "reprints", "off_topic", "errors")
CRAWL = ["crawl", "--json", "--quiet", "--trigger", "schedule"]


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def summary_of(raw: bytes) -> dict | None:
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


class Revisits:
    """The revisit job of the daemon's scheduler (`run`, one at a time), and the child it is running."""

    def __init__(self, settings, monitor, client, child_env: dict):
        self.settings = settings
        self.keys = settings.keys
        self.monitor = monitor
        self.client = client          # a callable: the daemon's current Redis client, or None
        self.child_env = child_env
        self.idle = threading.Event()  # set while no revisit runs
        self.idle.set()
        self.current: subprocess.Popen | None = None  # the running child
        self.current_stop: str | None = None          # why the daemon stopped it, if it did
        self._guard = threading.Lock()                # `allowed` and `current` change together
        self._allowed = False

    # -- who may start a child ---------------------------------------------------------------------------
    def allow(self) -> None:
        with self._guard:
            self._allowed = True

    def forbid(self) -> subprocess.Popen | None:
        """No new child from now on; returns the running one, if any (recorded before this returns)."""
        with self._guard:
            self._allowed = False
            proc = self.current
        return proc if proc is not None and proc.poll() is None else None

    def stop_running(self, why: str, *, first: int = signal.SIGTERM, grace: float | None = None) -> None:
        """Forbid new children and stop the running one: its process group gets `first`, then SIGKILL."""
        proc = self.forbid()
        if proc is None:
            return
        log.warning("stopping the running revisit (pid %d) with %s: %s", proc.pid, signal.Signals(first).name, why)
        self.current_stop = why
        stop_group(proc, first=first, **({} if grace is None else {"grace": grace}))

    # -- one revisit (runs in the scheduler's single worker thread) ------------------------------------
    def run(self) -> None:
        self.idle.clear()
        try:
            self._revisit()
        except Exception:  # noqa: BLE001 - a daemon bug must be reported, not end the schedule silently
            log.exception("revisit failed inside the daemon")
        finally:
            self.idle.set()

    def _revisit(self) -> None:
        with self._guard:
            allowed = self._allowed
        if not allowed:  # stepped down or stopping between the job's start and here
            return
        with self.monitor.checkin() as check_in:  # Sentry Crons: in_progress now, ok/error at the end
            started, started_iso = time.monotonic(), _now_iso()
            outcome, summary, error = self._run_child()
            duration = round(time.monotonic() - started, 3)
            check_in.ok = outcome in OK_OUTCOMES
        if summary is None:  # the child recorded nothing: record the run here so status shows it
            record = {"id": uuid.uuid4().hex[:12], "trigger": "schedule", "started_at": started_iso,
                      "ended_at": _now_iso(), "duration": duration, "outcome": outcome, "counts": {},
                      "error": error}
            self._redis(lambda c: RunHistory(c, self.keys, self.settings.history_size).record(record))
        self._judge(outcome, summary, error)

    def _spawn(self, out) -> subprocess.Popen | None:
        """The child, recorded as `current`; None when no child may start. One step under the guard."""
        with self._guard:
            if not self._allowed:
                return None
            self.current_stop = None
            # SIGKILL if the daemon dies: an orphaned crawl must not overlap the next leader's
            self.current = spawn(CRAWL, dict(self.child_env), stdout=out, death_signal=signal.SIGKILL)
            return self.current

    def _run_child(self) -> tuple[str, dict | None, str | None]:
        with tempfile.TemporaryFile() as out:
            proc = self._spawn(out)
            if proc is None:
                return "killed", None, "stopped before the revisit started"
            log.info("revisit started (pid %d)", proc.pid)
            try:
                returncode = proc.wait(timeout=self.settings.run_timeout)
            except subprocess.TimeoutExpired:
                log.error("revisit overran its time limit of %ss; killing its process group",
                          self.settings.run_timeout)
                self.current_stop = "timeout"
                returncode = stop_group(proc, grace=STOP_GRACE)
            finally:
                with self._guard:
                    self.current = None
            out.seek(0)
            summary = summary_of(out.read())
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
        if outcome == "deferred":
            self._deferred(summary.get("deferred") or {})
            return
        if outcome == "interrupted" and self.current_stop:
            # the daemon itself stopped it (stepping down, stopping): expected, not a failure in a row
            log.info("revisit interrupted: %s", self.current_stop)
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

    def _deferred(self, deferral: dict) -> None:
        """The site asked for time (crawler/run.py's summary `deferred`): say so; alert only on a long row."""
        why = asked_for(deferral.get("retry_after"))
        earlier = "" if deferral.get("asked") else " to an earlier pass"
        # info, as "revisit ok": the crawl itself warned when the site refused (crawler/poll.py)
        log.info("revisit deferred: the site asked for no request before %s (it answered %s%s, %s)",
                 deferral.get("until", "?"), deferral.get("status", "?"), earlier, why)
        refusals, threshold = deferral.get("refusals") or 0, self.settings.failed_runs_alert
        if deferral.get("asked") and refusals and refusals % threshold == 0:
            # a site that refuses every time we come back may be blocking us: someone should look
            log.error("the site has refused %d requests in a row (last: %s, %s); no request to it before %s",
                      refusals, deferral.get("status", "?"), why, deferral.get("until", "?"))

    def _redis(self, call):
        client = self.client()
        if client is None:
            return None
        try:
            return call(client)
        except redis.RedisError as exc:
            log.warning("could not update Redis after a revisit: %s", exc)
            return None
