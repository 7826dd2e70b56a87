"""Stopping on SIGTERM/SIGINT in two steps, with one rule for every long-running command (`run`, `alerts`).

Warm stop (the first signal): `requested` is set. The command stops taking new work, finishes what is in
flight, releases what it holds and returns normally (exit 0). With `warm_bound`, a warm stop that has not
ended after that many seconds turns into a cold one, so a stop request never waits forever.

Cold stop (a second signal, or the warm bound passed): the work in flight is abandoned — each command keeps
its work safe to abandon (an item is one XADD; an unacknowledged delivery stays pending and is delivered
after the next start) — but what the process owns is still stopped and what it holds released: the steps
the command registered with `on_cold` run in order, each one's failure logged and the next one run anyway,
and the process exits with status 1 after `cold_bound` seconds at most, whatever a step still waits for.

Why a debounce: one stop request often arrives twice at once (`timeout`, a supervisor or a shell signal the
process and then its process group); only a signal more than `debounce` seconds after the first means
"force".

Why the cold steps run in a thread of their own rather than in the signal handler: a handler runs in the
main thread between two bytecodes, possibly while that thread holds a lock a step needs (a connection
pool's, logging's). In a thread the step waits for the lock, and the bound still ends the wait.

Use:

    with Shutdown(warm_message="...", cold_message="...") as stop:
        stop.on_cold("kill the children", kill_children)
        while not stop.requested.wait(1.0):
            ...
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

SIGNAL_DEBOUNCE = 1.0  # seconds within which a repeated signal is the same stop request
COLD_BOUND = 15.0      # seconds the cold steps may take before the process exits regardless
COLD_EXIT_STATUS = 1


class Shutdown:
    """The stop requests of one process: `requested` (warm) and `forced` (cold) are threading Events."""

    def __init__(self, *, warm_message: str = "stopping (send the signal again to force)",
                 cold_message: str = "forced stop", warm_bound: float | None = None,
                 cold_bound: float = COLD_BOUND, debounce: float = SIGNAL_DEBOUNCE,
                 signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
                 exit: Callable[[int], None] = os._exit):
        self.warm_message = warm_message
        self.cold_message = cold_message
        self.warm_bound = warm_bound
        self.cold_bound = cold_bound
        self.debounce = debounce
        self.signals = signals
        self.requested = threading.Event()
        self.forced = threading.Event()
        self._exit = exit
        self._steps: list[tuple[str, Callable[[], object]]] = []
        self._first_at = 0.0
        self._previous: dict[int, object] = {}
        self._warm_timer: threading.Timer | None = None
        self._cold_thread: threading.Thread | None = None
        self._guard = threading.Lock()

    # -- set-up ----------------------------------------------------------------------------------------
    def install(self) -> Shutdown:
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def uninstall(self) -> None:
        """Restore the previous handlers and drop the warm bound (a warm stop that ended in time)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        if self._warm_timer is not None:
            self._warm_timer.cancel()
        cold = self._cold_thread
        if cold is not None:  # a cold stop is under way: it ends the process, let it finish
            cold.join()

    def __enter__(self) -> Shutdown:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.uninstall()

    def on_cold(self, name: str, step: Callable[[], object]) -> None:
        """A step of the cold stop: stop something this process owns or release something it holds.
        Steps run in the order they were registered; each should be quick and idempotent (the warm stop
        running at the same time may be doing the same)."""
        self._steps.append((name, step))

    # -- requests --------------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        now = time.monotonic()
        if self.requested.is_set():
            if now - self._first_at < self.debounce:
                return  # the same request delivered twice
            log.warning("%s again: %s", name, self.cold_message)
            self.force()
            return
        self._first_at = now
        log.warning("%s: %s", name, self.warm_message)
        self.request()

    def request(self) -> None:
        """Ask for a warm stop (what the first signal does)."""
        if self.requested.is_set():
            return
        self._first_at = self._first_at or time.monotonic()
        self.requested.set()
        if self.warm_bound is not None:
            self._warm_timer = threading.Timer(self.warm_bound, self._warm_overran)
            self._warm_timer.daemon = True
            self._warm_timer.start()

    def _warm_overran(self) -> None:
        log.error("the stop did not end within %.0fs; forcing it", self.warm_bound)
        self.force()

    def force(self) -> None:
        """Ask for a cold stop: run the cold steps in a thread and exit within `cold_bound` seconds."""
        with self._guard:
            if self.forced.is_set():
                return
            self.forced.set()
            self.requested.set()
            self._cold_thread = threading.Thread(target=self._cold, name="cold-stop", daemon=True)
            self._cold_thread.start()

    def _cold(self) -> None:
        done = threading.Event()
        runner = threading.Thread(target=self._run_steps, args=(done,), name="cold-steps", daemon=True)
        runner.start()
        if not done.wait(self.cold_bound):
            log.error("cold stop: steps still running after %.0fs; exiting anyway", self.cold_bound)
        _flush_logs()
        self._exit(COLD_EXIT_STATUS)

    def _run_steps(self, done: threading.Event) -> None:
        for name, step in self._steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - one step failing must not keep the others from running
                log.warning("cold stop: could not %s (%s: %s)", name, exc.__class__.__name__, exc)
        done.set()


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass
