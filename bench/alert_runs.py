"""What the two time-to-alert benchmarks (time_to_alert.py, time_to_alert_defaults.py) share: when the
daemon spawned each revisit (its log's "revisit started" lines), the split of each article's latency at
the revisit that delivered it, a percentile, and the teardown of a daemon run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from crawl_overhead import cleanup

STARTED_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*revisit started")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def spawn_times(log_text: str) -> list[float]:
    """The moments the daemon spawned a revisit child, from its log."""
    spawns = []
    for line in log_text.splitlines():
        m = STARTED_LINE.match(line)
        if m:
            spawns.append(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return spawns


@dataclass
class Latencies:
    """Per article: added → webhook received; and split at the spawn of the revisit that delivered it."""

    latencies: list[float] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)  # addition → spawn of the delivering revisit
    rests: list[float] = field(default_factory=list)  # that spawn (or the addition, if later) → received


def split_latencies(added: dict[str, float], received: dict[str, float], spawns: list[float]) -> Latencies:
    out = Latencies(missing=[i for i in added if i not in received],
                    latencies=[received[i] - added[i] for i in added if i in received])
    for i, at in added.items():
        # The revisit that delivered it: the last one spawned before receipt. It may have been spawned just
        # before the addition (its child was still starting and had not read list page 1): wait 0 then.
        before = [s for s in spawns if s <= received.get(i, 0)]
        if before:
            out.waits.append(max(0.0, before[-1] - at))
            out.rests.append(received[i] - max(before[-1], at))
    return out


def stop_run(daemon, server, receiver, client, prefix: str) -> None:
    """Kill a daemon still running (the run failed), stop the replica and the receiver, drop the keys."""
    if daemon and daemon.poll() is None:
        daemon.kill()
    server.stop()
    receiver.stop()
    cleanup(client, prefix)
