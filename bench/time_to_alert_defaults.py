"""Time to alert at the default settings: publication → webhook, and requests to the site per (idle) hour.

    python bench/time_to_alert_defaults.py [--minutes 14] [--articles 12] [--seed 1] [--redis-url URL]

`newswatch run` — a real daemon with its alert worker — with the default settings: only the site URL and
the webhook are set (plus what points it at this benchmark's Redis, key prefix and data folder, and
NEWSWATCH_WEBHOOK_ALLOW_PRIVATE=1, without which a receiver on loopback is refused). The site is the
replica (bench/replica_server.py, its own process) with 10 articles, read once by `newswatch crawl
--baseline` (default settings too) before the daemon starts; the webhook is bench/receiver.py on loopback.
`--articles` new on-topic articles are published at uniformly random moments of the window
[30 s, minutes − 3 min] after the daemon started; the run then waits for the last webhook (at most 3 min).
Latency = receipt of an article's webhook − the moment the replica started serving it.

Also reported: the site's requests while the daemon ran (the replica's log) and per hour, the requests of
an idle pass and the passes per hour (run history, daemon log), from which the requests per idle hour
follow; the CPU time of one pass (a `newswatch crawl` child, idle and with one new article, measured after
the daemon stopped) and of the daemon itself; and, side by side, the same latency for the previous
defaults (interval 600 s + up to 60 s jitter), computed — not run: a 15-minute run would see one or two
passes — from their schedule and the spawn → webhook times measured here. Results go to
bench/results/time_to_alert_defaults.txt (appended per run, so several runs sit together).
"""

from __future__ import annotations

import argparse
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

import psutil
import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from alert_runs import pct, spawn_times, split_latencies, stop_run  # noqa: E402
from crawl_overhead import NEWSWATCH, run_measured  # noqa: E402
from receiver import RecordingReceiver  # noqa: E402
from replica_server import ReplicaServer, fresh_number  # noqa: E402
from report import machine  # noqa: E402

from newswatch.defaults import DEFAULT_INTERVAL, DEFAULT_JITTER  # noqa: E402

OLD_INTERVAL, OLD_JITTER = 600, 60  # the defaults before this benchmark's change
BASELINE = 10  # articles on the site before the daemon starts, read by `newswatch crawl --baseline`


def defaults_env(redis_url: str, prefix: str, data_dir: str, site_url: str, webhook_url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_") and k != "SENTRY_DSN"}
    env.update({"NEWSWATCH_REDIS_URL": redis_url, "NEWSWATCH_KEY_PREFIX": prefix, "NEWSWATCH_DATA_DIR": data_dir,
                "NEWSWATCH_SITE_URL": site_url, "NEWSWATCH_WEBHOOK_URL": webhook_url,
                "NEWSWATCH_WEBHOOK_ALLOW_PRIVATE": "1", "NEWSWATCH_LOG_LEVEL": "info"})
    return env


def schedule_model(interval: float, jitter: float, rests: list[float], rng: random.Random,
                   samples: int = 200_000) -> list[float]:
    """Latencies of articles published at uniformly random moments under APScheduler's interval trigger
    (each period = interval + U(0, jitter)), each plus a spawn → webhook time drawn from `rests`."""
    fires, t = [], 0.0
    horizon = samples / 50 * (interval + jitter)
    while t < horizon + 2 * (interval + jitter):
        t += interval + rng.uniform(0, jitter)
        fires.append(t)
    out, i = [], 0
    for published in sorted(rng.uniform(0, horizon) for _ in range(samples)):
        while fires[i] < published:
            i += 1
        out.append(fires[i] - published + rng.choice(rests))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=14.0, help="the daemon's run, at most 15")
    parser.add_argument("--articles", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--redis-url", default=os.environ.get("NEWSWATCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "time_to_alert_defaults.txt"))
    args = parser.parse_args()
    if not 5 <= args.minutes <= 15:
        parser.error("--minutes must be between 5 and 15")
    rng = random.Random(args.seed)
    client = redis.Redis.from_url(args.redis_url)
    prefix = f"nwbench-{uuid.uuid4().hex[:8]}"
    server = ReplicaServer(("crawl", {"articles": BASELINE, "per_page": 40}))
    receiver = RecordingReceiver().start()
    added: dict[str, float] = {}
    daemon = None
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            env = defaults_env(args.redis_url, prefix, data_dir, server.url, receiver.url)
            subprocess.run([NEWSWATCH, "crawl", "--baseline", "--quiet"], env=env, check=True,
                           capture_output=True, timeout=300)
            server.call("reset_counts")
            log_path = Path(data_dir) / "daemon.log"
            with open(log_path, "w") as log_file:
                daemon = subprocess.Popen([NEWSWATCH, "run"], env=env, stdout=log_file, stderr=log_file,
                                          start_new_session=True)
                daemon_ps = psutil.Process(daemon.pid)
                t0 = time.time()
                window = args.minutes * 60 - 180
                moments = sorted(rng.uniform(30, window) for _ in range(args.articles))
                for n, moment in enumerate(moments):
                    time.sleep(max(0.0, t0 + moment - time.time()))
                    article_id, at = server.call(
                        "add", (fresh_number(n, after=BASELINE, block=40 + args.seed), True))
                    added[f"daydaynews-{article_id}"] = at
                deadline = t0 + args.minutes * 60
                while time.time() < deadline and not set(added) <= set(receiver.first_seen()):
                    time.sleep(0.2)
                ran = time.time() - t0
                cpu = daemon_ps.cpu_times()
                daemon_cpu = cpu.user + cpu.system  # the daemon alone; its children are counted below
                worker_cpu = 0.0
                for child in daemon_ps.children():
                    if "alerts" in " ".join(child.cmdline()):
                        c = child.cpu_times()
                        worker_cpu += c.user + c.system
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(60)
            site_log = server.call("log")
            spawns = spawn_times(log_path.read_text())
            runs = [json.loads(r) for r in client.lrange(f"{prefix}:runs", 0, -1)]
            # CPU of one pass as the daemon runs it, measured with the daemon stopped: idle, and one new article
            quiet = {**env, "NEWSWATCH_LOG_LEVEL": "error"}
            idle_cpu = [run_measured([NEWSWATCH, "crawl", "--json", "--quiet"], quiet)[3] for _ in range(3)]
            new_cpu = []
            for n in range(2):
                server.call("add", (fresh_number(args.articles + n, after=BASELINE, block=40 + args.seed), True))
                new_cpu.append(run_measured([NEWSWATCH, "crawl", "--json", "--quiet"], quiet)[3])
    finally:
        stop_run(daemon, server, receiver, client, prefix)

    split = split_latencies(added, receiver.first_seen(), spawns)
    latencies, missing, rests = split.latencies, split.missing, split.rests
    intervals = [b - a for a, b in zip(spawns, spawns[1:], strict=False)]
    scheduled = [r for r in runs if r.get("trigger") == "schedule"]
    idle_runs = [r for r in scheduled if not r["counts"].get("fetched") and not r["counts"].get("new")]
    idle_requests = statistics.median(r["counts"]["requests"] for r in idle_runs) if idle_runs else float("nan")
    passes_per_hour = 3600 / statistics.mean(intervals)
    robots = sum(1 for e in site_log if e[1] == "/robots.txt")
    per_idle_hour = idle_requests * passes_per_hour + 1 / 24  # robots.txt: once per 24 h when unchanged
    # where a missing article went, as the passes counted it (a reprint, off topic, an error)
    dropped = {name: sum(r["counts"].get(name, 0) for r in runs)
               for name in ("new", "reprints", "off_topic", "errors", "analysis_errors")}
    model_new = schedule_model(DEFAULT_INTERVAL, DEFAULT_JITTER, rests, rng)
    model_old = schedule_model(OLD_INTERVAL, OLD_JITTER, rests, rng)
    p50, p99 = statistics.median(latencies), pct(latencies, 0.99)
    lines = [
        f"newswatch time to alert at the default settings — {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"machine: {machine()}; "
        f"load average {os.getloadavg()[0]:.2f} (shared machine)",
        f"command: python bench/time_to_alert_defaults.py --minutes {args.minutes:g} --articles {args.articles} "
        f"--seed {args.seed}",
        f"settings: defaults (interval {DEFAULT_INTERVAL} s + up to {DEFAULT_JITTER} s jitter), only the site URL "
        "and the webhook set; daemon ran {:.0f} s, {} articles published at random moments".format(ran, len(added)),
        "",
        f"publication → webhook, {len(latencies)} of {len(added)} received ({len(missing)} missing):",
        f"  p50 {p50:.1f} s   p99 {p99:.1f} s   max {max(latencies):.1f} s   min {min(latencies):.1f} s",
        f"  targets p50 <= 60 s: {'met' if p50 <= 60 else 'MISSED'}; p99 <= 150 s: {'met' if p99 <= 150 else 'MISSED'}",
        f"  latencies: {' '.join(f'{v:.1f}' for v in sorted(latencies))}",
        *([f"  missing: {' '.join(sorted(missing))}; the passes counted {dropped}"] if missing else []),
        f"  spawn of the delivering pass → webhook: p50 {statistics.median(rests):.1f} s, max {max(rests):.1f} s",
        "",
        f"requests to the site while the daemon ran: {len(site_log)} in {ran:.0f} s = {len(site_log) * 3600 / ran:.0f}/h "
        f"(robots.txt {robots}: stored by the baseline crawl)",
        f"  passes: {len(scheduled)}, spawn-to-spawn mean {statistics.mean(intervals):.1f} s "
        f"→ {passes_per_hour:.1f} passes/h; requests of an idle pass: {idle_requests:g} ({len(idle_runs)} idle passes, "
        f"{sum(1 for r in idle_runs if r.get('polled'))} of them ended by the poll of list page 1 without Scrapy)",
        f"  requests per idle hour: {idle_requests:g} × {passes_per_hour:.1f} + robots.txt 1/24 = {per_idle_hour:.1f} "
        f"(target <= 60: {'met' if per_idle_hour <= 60 else 'MISSED'})",
        "",
        f"CPU per pass (`newswatch crawl` child, user+system, default settings): idle {statistics.median(idle_cpu):.2f} s "
        f"({' '.join(f'{c:.2f}' for c in idle_cpu)}), one new article {statistics.median(new_cpu):.2f} s "
        f"({' '.join(f'{c:.2f}' for c in new_cpu)}) → idle hour ≈ {statistics.median(idle_cpu) * passes_per_hour:.0f} CPU s",
        f"daemon process itself: {daemon_cpu:.2f} CPU s in {ran:.0f} s; alert worker {worker_cpu:.2f} CPU s",
        "",
        "model (APScheduler's interval trigger, uniform publication times, spawn → webhook drawn from this run):",
        f"  new defaults {DEFAULT_INTERVAL}+U(0,{DEFAULT_JITTER}) s: p50 {statistics.median(model_new):.1f} s, "
        f"p99 {pct(model_new, 0.99):.1f} s  (measured above: p50 {p50:.1f}, p99 {p99:.1f})",
        f"  old defaults {OLD_INTERVAL}+U(0,{OLD_JITTER}) s: p50 {statistics.median(model_old):.1f} s, "
        f"p99 {pct(model_old, 0.99):.1f} s; requests per idle hour {3600 / (OLD_INTERVAL + OLD_JITTER / 2) * 2:.1f} "
        "(2 per pass then: robots.txt was fetched by every pass)",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.out, "a", encoding="utf-8") as fh:
        fh.write(text + "\n")
    return 0 if not missing else 1


if __name__ == "__main__":
    sys.exit(main())
