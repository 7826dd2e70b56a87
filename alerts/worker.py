"""The alert worker: every item of the stream delivered to every configured endpoint, at least once.

One `EndpointRunner` (runner.py) per endpoint, each supervised in a thread of its own, so one endpoint's
failure never ends another's deliveries. Use in-process: `AlertWorker(client, settings).run(stop_event)`
blocks until `stop_event` is set, then finishes the deliveries in flight and returns. The command line
(`newswatch alerts`) is `command.alerts_command`.
"""

from __future__ import annotations

import logging
import socket
import threading

from alerts.runner import REDIS_ERROR_PAUSE, EndpointRunner
from newswatch.errors import ConfigError

log = logging.getLogger(__name__)


class AlertWorker:
    """Every configured endpoint's runner, in threads of this process. Reads settings `endpoints`
    (NEWSWATCH_WEBHOOK_URL and `[[webhooks]]`), `webhook_consumer` and the runners' settings."""

    def __init__(self, client, settings, *, endpoints=None):
        endpoints = settings.endpoints if endpoints is None else tuple(endpoints)
        if not endpoints:
            raise ConfigError("NEWSWATCH_WEBHOOK_URL", "no webhook endpoint configured "
                              "(set it, or add [[webhooks]] tables to the NEWSWATCH_CONFIG file)")
        base = settings.webhook_consumer or socket.gethostname()
        self.runners = [EndpointRunner(client, settings, endpoint, base) for endpoint in endpoints]

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set; then finish the deliveries in flight and return."""
        threads = [threading.Thread(target=self._supervise, args=(runner, stop), daemon=True,
                                    name=f"alerts-{runner.name}") for runner in self.runners]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)

    def release_leases(self) -> None:
        """Give up every consumer name now (a forced stop): the next start gets the same names back."""
        for runner in self.runners:
            runner.lease.release()

    @staticmethod
    def _supervise(runner: EndpointRunner, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                runner.run(stop)
            except Exception:  # noqa: BLE001 - one endpoint's failure must not end the others
                log.exception("alert worker for endpoint %r failed; restarting it", runner.name)
                stop.wait(REDIS_ERROR_PAUSE * 5)

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return {runner.name: dict(runner.stats) for runner in self.runners}
