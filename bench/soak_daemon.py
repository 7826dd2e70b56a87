"""Soak: N consecutive scheduled revisits in one `newswatch run` against the site replica.

Proves the child-process design holds over many runs: no failed run, no process left behind, and the
daemon's resident memory flat. Prints RSS of the daemon (the long-lived process) and of its whole process
tree at the start (after a few warm-up runs) and at the end, and the number of runs that were not ok;
writes the same to bench/results/soak.txt. Not part of CI; takes several minutes.

    python bench/soak_daemon.py [--runs 200] [--interval 1] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import psutil
import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.replica import corpus, corpus_article, standard_site  # noqa: E402

WARMUP = 5


def rss(pid: int) -> tuple[int, int, int]:
    """(daemon RSS, whole tree RSS, number of live descendants), bytes."""
    daemon = psutil.Process(pid)
    own = daemon.memory_info().rss
    tree, alive = own, 0
    for child in daemon.children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            tree += child.memory_info().rss
            alive += 1
        except psutil.NoSuchProcess:
            continue
    return own, tree, alive


def mib(value: int) -> str:
    return f"{value / 2**20:.1f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--interval", type=int, default=1)
    parser.add_argument("--redis", default=os.environ.get("NWTEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "soak.txt"))
    args = parser.parse_args()

    replica, _ = standard_site()
    replica.start()
    prefix = f"nwsoak-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(args.redis)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_") and k != "SENTRY_DSN"}
    env.update(NEWSWATCH_REDIS_URL=args.redis, NEWSWATCH_KEY_PREFIX=prefix, NEWSWATCH_SITE_URL=replica.url,
               NEWSWATCH_INTERVAL=str(args.interval), NEWSWATCH_JITTER="0", NEWSWATCH_DOWNLOAD_DELAY="0",
               NEWSWATCH_AUTOTHROTTLE="0", NEWSWATCH_HISTORY_SIZE=str(args.runs + 100),
               NEWSWATCH_LOG_LEVEL="warning", NEWSWATCH_DATA_DIR=f"/tmp/{prefix}")
    log_path = Path(f"/tmp/{prefix}.log")
    started = time.monotonic()
    with open(log_path, "wb") as log_file:
        daemon = subprocess.Popen([sys.executable, "-m", "newswatch.cli", "run"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=log_file, cwd=str(REPO))
    runs_key = f"{prefix}:runs"
    extra = iter(corpus(limit=400)[100:])
    next_id = 4_000_000
    samples = []
    first = last = None
    peak_start = peak_end = 0  # the tree's largest RSS seen (a crawl child running) early and late
    try:
        done = 0
        while done < args.runs:
            if daemon.poll() is not None:
                print(f"daemon exited early with status {daemon.returncode}; log: {log_path}", file=sys.stderr)
                return 1
            time.sleep(0.5)
            now_done = client.llen(runs_key)
            if now_done != done and now_done % 10 == 0:
                # a new (off-topic) article every ten runs, so revisits keep fetching and filtering, not only re-reading
                doc = next(extra, None)
                if doc is not None:
                    replica.add(corpus_article(doc, next_id))
                    next_id += 1
            done = now_done
            if done >= WARMUP and first is None:
                first = rss(daemon.pid)
            now = rss(daemon.pid)
            if WARMUP <= done < WARMUP + 20:
                peak_start = max(peak_start, now[1])
            if done >= args.runs - 20:
                peak_end = max(peak_end, now[1])
            if done and done % 25 == 0 and (not samples or samples[-1][0] != done):
                samples.append((done, *rss(daemon.pid)))
        last = rss(daemon.pid)
        elapsed = time.monotonic() - started
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
        replica.stop()

    records = [json.loads(raw) for raw in client.lrange(runs_key, 0, -1)]
    outcomes = Counter(r.get("outcome") for r in records)
    not_ok = sum(n for outcome, n in outcomes.items() if outcome != "ok")
    queued = client.xlen(f"{prefix}:items")
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)

    lines = [
        f"soak: {len(records)} consecutive scheduled revisits in one `newswatch run` (interval {args.interval}s) "
        f"against the replica, {elapsed:.0f}s",
        f"outcomes: {dict(outcomes)}; runs not ok: {not_ok}; items queued: {queued}",
        f"daemon RSS   after {WARMUP} runs: {mib(first[0])}   at the end: {mib(last[0])}   "
        f"change: {(last[0] - first[0]) / 2**20:+.1f} MiB",
        f"process tree RSS after {WARMUP} runs: {mib(first[1])} ({first[2]} children)   at the end: "
        f"{mib(last[1])} ({last[2]} children)",
        f"process tree peak RSS (daemon + a running crawl child), runs {WARMUP}-{WARMUP + 19}: "
        f"{mib(peak_start)}   last 20 runs: {mib(peak_end)}",
        "daemon RSS every 25 runs: " + ", ".join(f"{n}: {mib(own)}" for n, own, _, _ in samples),
        f"daemon exit status after SIGTERM: {daemon.returncode}",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    return 0 if not_ok == 0 and daemon.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
