"""The cost of a revisit with nothing new: requests and bytes, newswatch vs a naive recrawl.

    python bench/idle_revisit.py [--articles 200] [--per-page 40] [--revisits 3] [--redis-url URL]

1. A replica (bench/replica_server.py, its own process) with N articles; one full `newswatch crawl` reads
   it (queueing what is new and storing the first list page's ETag / Last-Modified).
2. The replica is left unchanged and `newswatch crawl` runs `--revisits` more times. For each idle
   revisit the replica's log gives the requests it answered and the body bytes it sent; Scrapy's own
   `downloader/request_count` and `downloader/response_bytes` (headers included) are shown too.
3. Anchor, side by side against the same server: a naive recrawl — a bare Scrapy spider that fetches
   robots.txt, the first list page (no conditional request) and every article it lists.

Expected for newswatch: one request per idle revisit (the first list page answered 304 Not Modified: the
robots.txt the full pass read is kept in Redis for 24 hours, crawler/robots.py) and no article page.
Results go to bench/results/idle_revisit.txt.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from crawl_overhead import NEWSWATCH, cleanup, newswatch_env, run_measured  # noqa: E402
from replica_server import ReplicaServer  # noqa: E402
from report import write_report  # noqa: E402


def served(log: list) -> dict:
    return {"requests": len(log), "bytes": sum(e[3] for e in log),
            "articles": sum(1 for e in log if e[1].endswith(".html")),
            "statuses": sorted({f"{e[1]} {e[2]}" for e in log if not e[1].endswith(".html")})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=200)
    parser.add_argument("--per-page", type=int, default=40)
    parser.add_argument("--revisits", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--redis-url", default=os.environ.get("NEWSWATCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "idle_revisit.txt"))
    args = parser.parse_args()

    client = redis.Redis.from_url(args.redis_url)
    prefix = f"nwbench-{uuid.uuid4().hex[:8]}"
    server = ReplicaServer(("crawl", {"articles": args.articles, "per_page": args.per_page}))
    idle, idle_scrapy, naive, naive_scrapy = [], [], [], []
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            env = newswatch_env(args.redis_url, prefix, data_dir, server.url, args.concurrency)
            first, *_ = run_measured([NEWSWATCH, "crawl", "--json", "--quiet"], env)
            first_served = served(server.call("log"))
            for _ in range(args.revisits):
                server.call("reset_counts")
                summary, *_ = run_measured([NEWSWATCH, "crawl", "--json", "--quiet"], env)
                idle.append(served(server.call("log")))
                idle_scrapy.append((summary["counts"]["requests"], summary["counts"]["bytes"]))
                server.call("reset_counts")
                summary, *_ = run_measured([sys.executable, str(REPO / "bench" / "crawl_overhead.py"), "--bare",
                                            server.url, "--concurrency", str(args.concurrency),
                                            "--max-pages", "1"], dict(os.environ))
                naive.append(served(server.call("log")))
                naive_scrapy.append((summary["requests"], summary["bytes"]))
    finally:
        server.stop()
        cleanup(client, prefix)

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    nw_req, nw_bytes = med(idle, "requests"), med(idle, "bytes")
    nv_req, nv_bytes = med(naive, "requests"), med(naive, "bytes")
    cpu_model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                      if line.startswith("model name")), "?")
    lines = [
        f"newswatch idle revisit benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"machine: {cpu_model}, nproc {os.cpu_count()}, {platform.platform()}, Python {platform.python_version()}",
        f"command: python bench/idle_revisit.py --articles {args.articles} --per-page {args.per_page} "
        f"--revisits {args.revisits}",
        f"replica: {args.articles} articles, {args.per_page} per list page; first full pass: "
        f"{first_served['requests']} requests, {first_served['bytes']} body bytes, new {first['counts']['new']}",
        "",
        f"per idle revisit (replica unchanged), median of {args.revisits}; bytes = response bodies as served:",
        f"  newswatch crawl:                          {nw_req:4.0f} requests {nw_bytes:9.0f} bytes   "
        f"article pages {med(idle, 'articles'):.0f}; {idle[-1]['statuses']}",
        f"  anchor: naive recrawl of list page 1 and its articles: {nv_req:4.0f} requests {nv_bytes:9.0f} bytes   "
        f"article pages {med(naive, 'articles'):.0f}",
        f"  ratio newswatch / naive:                  requests {nw_req / nv_req:.3f}   bytes "
        f"{nw_bytes / nv_bytes:.4f}",
        f"  Scrapy's own counts (responses incl. headers): newswatch {idle_scrapy[-1][0]} requests "
        f"{idle_scrapy[-1][1]} bytes; naive {naive_scrapy[-1][0]} requests {naive_scrapy[-1][1]} bytes",
    ]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
