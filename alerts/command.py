"""`newswatch alerts`: run the alert worker, re-enable an endpoint (`--enable`), or replay dead letters.

Stopping follows the one rule of every long-running command (newswatch/shutdown.py): the first
SIGTERM/SIGINT finishes the deliveries in flight and exits 0; a second one exits 1 at once, after
releasing the consumer names. What was in flight then stays pending and is delivered after the next start.
"""

from __future__ import annotations

import sys

from alerts.deadletters import replay
from alerts.worker import AlertWorker
from newswatch.connection import redis_session
from newswatch.errors import UnsafeEndpoint
from newswatch.shutdown import Shutdown


def enable_command(client, settings, name: str) -> int:
    keys = settings.keys
    known = {e.name for e in settings.endpoints}
    if name not in known and not client.exists(keys.disabled(name)):
        print(f"newswatch: no endpoint named {name!r} (configured: {', '.join(sorted(known)) or 'none'})",
              file=sys.stderr)
        return 2
    was = client.delete(keys.disabled(name))
    print(f"endpoint {name!r} " + ("enabled" if was else "was not disabled"))
    return 0


def alerts_command(settings, *, replay_dead: bool = False, enable: str | None = None) -> int:
    """Run the worker until SIGTERM/SIGINT (exit 0); a second signal forces exit (1)."""
    with redis_session(settings) as client:
        if enable:
            return enable_command(client, settings, enable)
        if replay_dead:
            delivered, kept = replay(client, settings)
            print(f"dead letters: {delivered} delivered, {kept} still dead")
            return 0 if kept == 0 else 1
        try:
            worker = AlertWorker(client, settings)
        except UnsafeEndpoint as exc:
            print(f"newswatch: {exc}", file=sys.stderr)
            return 2
        with Shutdown(warm_message="finishing deliveries in flight (signal again to force exit)",
                      cold_message="exiting without waiting for deliveries (what was in flight stays "
                                   "pending and is delivered after the next start)") as shutdown:
            shutdown.on_cold("release the consumer names", worker.release_leases)
            worker.run(shutdown.requested)
    return 0
