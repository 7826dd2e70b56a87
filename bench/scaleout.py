"""Scale-out: 1, 2 and 4 crawler processes working on one pass through a shared scrapy-redis frontier.

    python bench/scaleout.py [--articles 10000] [--per-page 200] [--processes 1 2 4] [--concurrency 16]

Each run is the product as a user runs it, with NEWSWATCH_FRONTIER=redis (crawler/frontier.py): one
`newswatch crawl` (the leader: seeds the pass) and n-1 `newswatch crawl --worker`, started together, all
sharing scrapy-redis's Scheduler queue `<prefix>:frontier:requests` and RFPDupeFilter
`<prefix>:frontier:dupefilter`. Any process may fetch any list or article page; its callback and the
pipelines (topic → dedupe → publish) run in that process. An anchor row runs the ordinary one-process pass
(NEWSWATCH_FRONTIER=memory, Scrapy's own scheduler) on the same replica, to show what the shared frontier
itself costs. Each run uses a fresh key prefix, so every article is new.

Pages per second = (list + article pages answered 200) / wall time from launching the processes to the
last one's exit (their start-up included). CPU = user + system seconds of all of them. Proof of
exactly-once: the replica's request count per article path (the maximum must be 1, and every article
fetched), and the stream (every `id` once; entries = the sum of `new` over the processes).
Results go to bench/results/scaleout.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from crawl_overhead import NEWSWATCH, cleanup, newswatch_env  # noqa: E402
from replica_server import ReplicaServer  # noqa: E402
from report import write_report  # noqa: E402


def run(server: ReplicaServer, n: int, args, client: redis.Redis, frontier: str = "redis") -> dict:
    prefix = f"nwbench-{uuid.uuid4().hex[:8]}"
    server.call("reset_counts")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            env = newswatch_env(args.redis_url, prefix, data_dir, server.url, args.concurrency,
                                max_pages=50, frontier=frontier)
            started = time.perf_counter()
            procs = [subprocess.Popen([NEWSWATCH, "crawl", "--json", "--quiet", *(["--worker"] if i else [])],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for i in range(n)]
            outs = [p.communicate(timeout=600) for p in procs]
            wall = time.perf_counter() - started
            for p, (_out, err) in zip(procs, outs, strict=True):
                if p.returncode != 0:
                    raise RuntimeError(f"a crawler process failed ({p.returncode}): {err[-2000:]}")
            summaries = [json.loads(out.strip().splitlines()[-1])["counts"] for out, _ in outs]
            entries = client.xrange(f"{prefix}:items")
    finally:
        cleanup(client, prefix)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    log = server.call("log")
    per_path = Counter(e[1] for e in log if e[1].endswith(".html"))
    ids = Counter(fields[b"id"].decode() for _, fields in entries)
    pages = sum(1 for e in log if e[2] == 200 and (e[1].endswith(".html") or "?page=" in e[1]))
    return {"processes": n, "frontier": frontier, "wall": wall, "pages": pages, "rate": pages / wall,
            "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "articles_fetched": len(per_path), "max_fetches": max(per_path.values(), default=0),
            "stream_entries": len(entries), "distinct_ids": len(ids), "max_per_id": max(ids.values(), default=0),
            # the leader's (process 0) counts are the whole pass's (crawler/frontier.py), a worker's its own
            "new": summaries[0]["new"],
            "per_process_fetched": [summaries[0]["fetched"] - sum(s["fetched"] for s in summaries[1:]),
                                    *(s["fetched"] for s in summaries[1:])],
            "load": os.getloadavg()[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=10000)
    parser.add_argument("--per-page", type=int, default=200)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--redis-url", default=os.environ.get("NEWSWATCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "scaleout.txt"))
    parser.add_argument("--no-anchor", action="store_true", help="skip the one-process in-memory-frontier run")
    args = parser.parse_args()

    client = redis.Redis.from_url(args.redis_url)
    t0 = time.perf_counter()
    server = ReplicaServer(("crawl", {"articles": args.articles, "per_page": args.per_page}))
    print(f"replica of {args.articles} articles ready in {time.perf_counter() - t0:.1f} s", flush=True)
    results = []
    runs = ([] if args.no_anchor else [(1, "memory")]) + [(n, "redis") for n in args.processes]
    try:
        for n, frontier in runs:
            r = run(server, n, args, client, frontier)
            results.append(r)
            print(f"  {n} process(es), {frontier} frontier: {r['pages']} pages in {r['wall']:.1f} s = {r['rate']:.0f} pages/s; CPU "
                  f"{r['cpu']:.1f} s; per process fetched {r['per_process_fetched']}; max fetches per article "
                  f"{r['max_fetches']}; stream {r['stream_entries']} entries, {r['distinct_ids']} ids; "
                  f"load {r['load']:.2f}", flush=True)
    finally:
        server.stop()
    cpu_model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                      if line.startswith("model name")), "?")
    base = next(r["rate"] for r in results if r["frontier"] == "redis")
    lines = [
        f"newswatch scale-out benchmark (scrapy-redis shared frontier) — {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"machine: {cpu_model}, nproc {os.cpu_count()}, {platform.platform()}, Python {platform.python_version()} "
        "(shared with other engineers' tests: see load)",
        f"command: python bench/scaleout.py --articles {args.articles} --per-page {args.per_page} "
        f"--processes {' '.join(map(str, args.processes))} --concurrency {args.concurrency}",
        f"replica: {args.articles} articles, {args.per_page} per list page (50 list pages); every other article "
        "on topic; concurrency per process " + str(args.concurrency),
        "",
        "processes frontier  pages  wall s  pages/s  speed-up  CPU s  max fetches/article  stream entries  ids  "
        "max entries/id  new (pass)  fetched per process  load",
    ]
    for r in results:
        lines.append(f"{r['processes']:9d} {r['frontier']:8s} {r['pages']:5d}  {r['wall']:6.1f}  {r['rate']:7.0f}  "
                     f"{r['rate'] / base:8.2f}  {r['cpu']:5.1f}  {r['max_fetches']:19d}  {r['stream_entries']:14d}  "
                     f"{r['distinct_ids']:4d}  {r['max_per_id']:14d}  {r['new']:9d}  "
                     f"{str(r['per_process_fetched']):19s}  {r['load']:.2f}")
    ok = all(r["max_fetches"] == 1 and r["max_per_id"] == 1 and r["stream_entries"] == r["new"]
             and r["articles_fetched"] == args.articles for r in results)
    lines += ["speed-up is against the first redis-frontier row; the memory row is the ordinary one-process pass "
              "(the anchor for the shared frontier's own cost)"]
    lines += ["", "exactly once: " + ("yes — every article page requested once, every stream id once, entries = new"
                                      if ok else "NO — see the table")]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
