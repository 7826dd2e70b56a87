"""Time to alert: from an article appearing on the site to its webhook reaching a local receiver.

    python bench/time_to_alert.py [--additions 20] [--interval 10] [--seed 7] [--redis-url URL]

`newswatch run` (a real daemon process, with its alert worker) revisits a replica (bench/replica_server.py,
its own process) every `--interval` seconds, NEWSWATCH_JITTER=0, politeness as in crawl_overhead.py
(concurrency 16, no delay, no AutoThrottle), webhook: a receiver on loopback in this process that notes
when each webhook-id arrives. After the first revisit has read the initial 40 articles, 20 new on-topic
articles are added one at a time, each after a random pause (uniform 1 s to 1.5 × interval), so they land
at random moments of the schedule. Latency = receipt time − time the article was added.

Target (the anchor of the issue): p99 ≤ interval + 2 s. The latency splits into the wait for the next
scheduled revisit (uniform over the interval by construction: the schedule's share) and the rest: the crawl
child's start-up, the pass, and delivery. The script reports both, using the daemon's log line
"revisit started (pid …)" for when each child was spawned, and measures separately, with the daemon
stopped, the wall time of one idle `newswatch crawl` child against its own reported pass duration (the
difference is interpreter and library start-up plus Redis session set-up and teardown).
Results go to bench/results/time_to_alert.txt.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from alert_runs import pct, spawn_times, split_latencies, stop_run  # noqa: E402
from crawl_overhead import NEWSWATCH, newswatch_env, run_measured  # noqa: E402
from receiver import RecordingReceiver  # noqa: E402
from replica_server import ReplicaServer, fresh_number  # noqa: E402
from report import machine, write_report  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"bench-secret-0123456789abcdef!!").decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--additions", type=int, default=20)
    parser.add_argument("--interval", type=int, default=10)
    parser.add_argument("--initial", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--redis-url", default=os.environ.get("NEWSWATCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "time_to_alert.txt"))
    args = parser.parse_args()
    rng = random.Random(args.seed)

    client = redis.Redis.from_url(args.redis_url)
    prefix = f"nwbench-{uuid.uuid4().hex[:8]}"
    server = ReplicaServer(("crawl", {"articles": args.initial, "per_page": 40}))
    receiver = RecordingReceiver().start()
    added: dict[str, float] = {}
    daemon = None
    load = []
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            env = newswatch_env(args.redis_url, prefix, data_dir, server.url, 16, interval=args.interval,
                                jitter=0, webhook_url=receiver.url, webhook_secret=SECRET,
                                webhook_allow_private=1, log_level="info")
            log_path = Path(data_dir) / "daemon.log"
            with open(log_path, "w") as log_file:
                daemon = subprocess.Popen([NEWSWATCH, "run"], env=env, stdout=log_file, stderr=log_file,
                                          start_new_session=True)
                deadline = time.time() + 120
                while client.llen(f"{prefix}:runs") < 1:  # the first revisit has read the initial articles
                    if time.time() > deadline or daemon.poll() is not None:
                        raise RuntimeError("the daemon's first revisit did not finish: "
                                           + log_path.read_text()[-2000:])
                    time.sleep(0.2)
                for i in range(args.additions):
                    time.sleep(rng.uniform(1.0, 1.5 * args.interval))
                    article_id, at = server.call("add", (fresh_number(i, after=args.initial, block=1), True))
                    added[f"daydaynews-{article_id}"] = at
                    load.append(os.getloadavg()[0])
                deadline = time.time() + 3 * args.interval + 30
                while time.time() < deadline and not set(added) <= set(receiver.first_seen()):
                    time.sleep(0.1)
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(60)
            spawns = spawn_times(log_path.read_text())
            runs = [json.loads(r) for r in client.lrange(f"{prefix}:runs", 0, -1)]
            # Start-up cost of one crawl child, measured with the daemon stopped: wall time vs pass duration.
            idle_walls = []
            for _ in range(3):
                summary, _peak, wall, _cpu, _own = run_measured([NEWSWATCH, "crawl", "--json", "--quiet"],
                                                          {**env, "NEWSWATCH_LOG_LEVEL": "error"})
                idle_walls.append((wall, summary["duration"]))
    finally:
        stop_run(daemon, server, receiver, client, prefix)
    split = split_latencies(added, receiver.first_seen(), spawns)
    latencies, missing, waits, rests = split.latencies, split.missing, split.waits, split.rests
    durations = [r["duration"] for r in runs if r.get("duration") is not None] or [float("nan")]
    startup = [w - d for w, d in idle_walls]
    target = args.interval + 2
    p50, p99 = statistics.median(latencies), pct(latencies, 0.99)
    lines = [
        f"newswatch time-to-alert benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"machine: {machine()}; "
        f"load average (1 min) during the additions: {min(load):.2f}–{max(load):.2f} (shared machine)",
        f"command: python bench/time_to_alert.py --additions {args.additions} --interval {args.interval} "
        f"--seed {args.seed}",
        f"newswatch run: NEWSWATCH_INTERVAL={args.interval}, NEWSWATCH_JITTER=0, concurrency 16, no delay, "
        f"no AutoThrottle; replica with {args.initial} articles, then {args.additions} on-topic additions",
        "",
        f"latency, article added → webhook received, {len(latencies)} of {len(added)} received "
        f"({len(missing)} missing):",
        f"  p50 {p50:.2f} s   p99 {p99:.2f} s   max {max(latencies):.2f} s   min {min(latencies):.2f} s",
        f"  target (anchor): p99 <= interval + 2 s = {target} s: {'met' if p99 <= target else 'MISSED'}",
        "",
        "where it goes (per addition):",
        f"  wait for the revisit that delivered it to spawn: p50 {statistics.median(waits):.2f} s, "
        f"max {max(waits):.2f} s (uniform over the interval by construction; 0 when a child spawned just "
        "before the addition picked it up)",
        f"  spawn (or addition, if later) → webhook received (child start-up + pass + delivery): "
        f"p50 {statistics.median(rests):.2f} s, "
        f"p99 {pct(rests, 0.99):.2f} s, min {min(rests):.2f} s",
        f"  scheduled passes (run_pass only, from the run history): {len(durations)} runs, median "
        f"{statistics.median(durations):.2f} s, max {max(durations):.2f} s",
        f"  one idle `newswatch crawl` child, daemon stopped: wall {statistics.median(w for w, _ in idle_walls):.2f} s "
        f"vs pass {statistics.median(d for _, d in idle_walls):.2f} s → start-up and teardown "
        f"{statistics.median(startup):.2f} s (median of 3)",
        f"  spawn-to-spawn intervals: median {statistics.median(b - a for a, b in zip(spawns, spawns[1:], strict=False)):.2f} s",
    ]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
