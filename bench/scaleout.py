"""Scale-out: 1, 2 and 4 crawler processes working on one pass through a shared scrapy-redis frontier.

    python bench/scaleout.py [--articles 10000] [--per-page 200] [--processes 1 2 4] [--concurrency 16]

The frontier is scrapy-redis's own (not a home-made protocol): its `Scheduler` with the Redis priority
queue at `<prefix>:frontier:requests` and its `RFPDupeFilter` at `<prefix>:frontier:dupefilter` (the
`Keys.frontier` name of newswatch.defaults). Every process runs newswatch's spider and pipelines unchanged
(`scrapy_settings(settings)` plus the scheduler settings below); any process may fetch any list or article
page and its callback runs there. Only the leader seeds the pass (list page 1 of each category); the
others start empty and take requests from the shared queue.

What this script adds around scrapy-redis, and why (it is benchmark code, not yet a product setting):
  - `FrontierScheduler`: scrapy-redis's Scheduler, except that the spider's end-of-pass release request
    (`data:,`, which hands this process's held items to its pipelines) stays in a local queue, because
    another process must not take it; and it marks the process busy in `<prefix>:frontier:active` before
    popping, so the leader can tell when the pass is over.
  - pass lifetime: the leader sets `<prefix>:frontier:pass`; a worker with nothing to do stays alive while
    that key exists; the leader ends the pass (deletes it) when the queue is empty and every process is
    idle. Scrapy's engine looks for new requests every 5 s when idle; the children lower that heartbeat
    (`ExecutionEngine._SLOT_HEARTBEAT_INTERVAL`, a private attribute) to 0.2 s so an idle worker notices
    new work promptly.

Per run: pages per second = (list + article pages answered 200) / wall time from the leader's launch to
the last process's exit (start-up of the processes included: they start together). Proof of exactly-once:
the replica's request count per article path (max must be 1), and the stream's entries (every `id` once;
entries = the pass's `new`). Results go to bench/results/scaleout.txt.
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

from crawl_overhead import cleanup  # noqa: E402
from replica_server import ReplicaServer  # noqa: E402

try:
    from scrapy_redis.scheduler import Scheduler as _RedisScheduler
except ImportError:  # pragma: no cover
    _RedisScheduler = object


class FrontierScheduler(_RedisScheduler):
    """scrapy-redis's Scheduler with a local queue for requests only this process may run (data: URLs)."""

    def open(self, spider):
        from collections import deque

        super().open(spider)
        self.local = deque()
        self.active_key = spider.settings.get("NEWSWATCH_FRONTIER_ACTIVE")
        self.name = str(os.getpid())
        self.busy = False

    def enqueue_request(self, request):
        if request.url.startswith("data:"):
            self.local.append(request)
            return True
        return super().enqueue_request(request)

    def next_request(self):
        if self.local:
            return self.local.popleft()
        if not self.busy:  # busy before popping: the leader never sees "queue empty, all idle" mid-hand-over
            self.server.hset(self.active_key, self.name, 1)
            self.busy = True
        return super().next_request()

    def has_pending_requests(self):
        return bool(self.local) or super().has_pending_requests()

    def mark_idle(self):
        self.server.hset(self.active_key, self.name, 0)
        self.busy = False


def child(args) -> None:
    from scrapy.core.engine import ExecutionEngine
    from scrapy.crawler import CrawlerProcess
    from scrapy.exceptions import DontCloseSpider

    from crawler.run import quiet_loggers
    from crawler.settings import scrapy_settings
    from crawler.spiders.daydaynews import DaydaynewsSpider
    from newswatch.config import Settings

    ExecutionEngine._SLOT_HEARTBEAT_INTERVAL = 0.2
    settings = Settings.load()
    keys = settings.keys
    leader = args.role == "leader"
    pass_key, active_key = keys.frontier + ":pass", keys.frontier + ":active"

    class SharedPassSpider(DaydaynewsSpider):
        async def start(self):
            if leader:
                async for request in super().start():
                    yield request

        def release_items(self, spider=None):
            super().release_items(spider)  # raises DontCloseSpider while this process holds items
            scheduler = self.crawler.engine._slot.scheduler
            scheduler.mark_idle()
            client = scheduler.server
            if leader:
                if len(scheduler.queue) == 0 and not any(int(v) for v in client.hvals(active_key)):
                    client.delete(pass_key)
                    return
                raise DontCloseSpider
            if client.exists(pass_key) or len(scheduler.queue):
                raise DontCloseSpider

    quiet_loggers(settings.log_level)
    redis_client = redis.Redis.from_url(settings.redis_url)
    if leader:
        redis_client.set(pass_key, os.getpid(), ex=900)
    scrapy = scrapy_settings(settings)
    scrapy.update({
        "SCHEDULER": "__main__.FrontierScheduler",
        "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
        "SCHEDULER_QUEUE_KEY": keys.frontier + ":requests",
        "SCHEDULER_DUPEFILTER_KEY": keys.frontier + ":dupefilter",
        "SCHEDULER_PERSIST": True,  # a process that ends must not flush the queue the others still use
        "REDIS_URL": settings.redis_url,
        "NEWSWATCH_FRONTIER_ACTIVE": active_key,
    })
    started = time.time()
    process = CrawlerProcess(scrapy)
    crawler = process.create_crawler(SharedPassSpider)
    process.crawl(crawler)
    process.start()
    stats = crawler.stats.get_stats()
    print(json.dumps({"role": args.role, "duration": time.time() - started,
                      "requests": stats.get("downloader/request_count", 0),
                      "fetched": stats.get("newswatch/fetched", 0), "new": stats.get("newswatch/new", 0),
                      "reprints": stats.get("newswatch/reprints", 0),
                      "off_topic": stats.get("newswatch/off_topic", 0),
                      "already_queued": stats.get("newswatch/already_queued", 0)}))


def run(server: ReplicaServer, n: int, args, client: redis.Redis) -> dict:
    prefix = f"nwbench-{uuid.uuid4().hex[:8]}"
    server.call("reset_counts")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
            env.update({"NEWSWATCH_REDIS_URL": args.redis_url, "NEWSWATCH_KEY_PREFIX": prefix,
                        "NEWSWATCH_DATA_DIR": data_dir, "NEWSWATCH_SITE_URL": server.url,
                        "NEWSWATCH_CONCURRENCY": str(args.concurrency), "NEWSWATCH_DOWNLOAD_DELAY": "0",
                        "NEWSWATCH_AUTOTHROTTLE": "0", "NEWSWATCH_MAX_PAGES": "50",
                        "NEWSWATCH_LOG_LEVEL": "error"})
            started = time.perf_counter()
            procs = [subprocess.Popen([sys.executable, __file__, "--child", "leader" if i == 0 else "worker"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for i in range(n)]
            outs = [p.communicate(timeout=600) for p in procs]
            wall = time.perf_counter() - started
            for p, (_out, err) in zip(procs, outs, strict=True):
                if p.returncode != 0:
                    raise RuntimeError(f"a crawler process failed ({p.returncode}): {err[-2000:]}")
            summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
            entries = client.xrange(f"{prefix}:items")
    finally:
        cleanup(client, prefix)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    log = server.call("log")
    per_path = Counter(e[1] for e in log if e[1].endswith(".html"))
    ids = Counter(fields[b"id"].decode() for _, fields in entries)
    pages = sum(1 for e in log if e[2] == 200 and (e[1].endswith(".html") or "?page=" in e[1]))
    return {"processes": n, "wall": wall, "pages": pages, "rate": pages / wall,
            "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "articles_fetched": len(per_path), "max_fetches": max(per_path.values(), default=0),
            "stream_entries": len(entries), "distinct_ids": len(ids), "max_per_id": max(ids.values(), default=0),
            "new": sum(s["new"] for s in summaries), "per_process_fetched": [s["fetched"] for s in summaries],
            "load": os.getloadavg()[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=10000)
    parser.add_argument("--per-page", type=int, default=200)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--redis-url", default=os.environ.get("NEWSWATCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "scaleout.txt"))
    parser.add_argument("--child", choices=("leader", "worker"), help=argparse.SUPPRESS, dest="role")
    args = parser.parse_args()
    if args.role:
        child(args)
        return 0

    client = redis.Redis.from_url(args.redis_url)
    t0 = time.perf_counter()
    server = ReplicaServer(("crawl", {"articles": args.articles, "per_page": args.per_page}))
    print(f"replica of {args.articles} articles ready in {time.perf_counter() - t0:.1f} s", flush=True)
    results = []
    try:
        for n in args.processes:
            r = run(server, n, args, client)
            results.append(r)
            print(f"  {n} process(es): {r['pages']} pages in {r['wall']:.1f} s = {r['rate']:.0f} pages/s; CPU "
                  f"{r['cpu']:.1f} s; per process fetched {r['per_process_fetched']}; max fetches per article "
                  f"{r['max_fetches']}; stream {r['stream_entries']} entries, {r['distinct_ids']} ids; "
                  f"load {r['load']:.2f}", flush=True)
    finally:
        server.stop()
    cpu_model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                      if line.startswith("model name")), "?")
    base = results[0]["rate"]
    lines = [
        f"newswatch scale-out benchmark (scrapy-redis shared frontier) — {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"machine: {cpu_model}, nproc {os.cpu_count()}, {platform.platform()}, Python {platform.python_version()} "
        "(shared with other engineers' tests: see load)",
        f"command: python bench/scaleout.py --articles {args.articles} --per-page {args.per_page} "
        f"--processes {' '.join(map(str, args.processes))} --concurrency {args.concurrency}",
        f"replica: {args.articles} articles, {args.per_page} per list page (50 list pages); every other article "
        "on topic; concurrency per process " + str(args.concurrency),
        "",
        "processes  pages  wall s  pages/s  speed-up  CPU s  max fetches/article  stream entries  ids  "
        "max entries/id  new (sum)  fetched per process  load",
    ]
    for r in results:
        lines.append(f"{r['processes']:9d}  {r['pages']:5d}  {r['wall']:6.1f}  {r['rate']:7.0f}  "
                     f"{r['rate'] / base:8.2f}  {r['cpu']:5.1f}  {r['max_fetches']:19d}  {r['stream_entries']:14d}  "
                     f"{r['distinct_ids']:4d}  {r['max_per_id']:14d}  {r['new']:9d}  "
                     f"{str(r['per_process_fetched']):19s}  {r['load']:.2f}")
    ok = all(r["max_fetches"] == 1 and r["max_per_id"] == 1 and r["stream_entries"] == r["new"]
             and r["articles_fetched"] == args.articles for r in results)
    lines += ["", "exactly once: " + ("yes — every article page requested once, every stream id once, entries = new"
                                      if ok else "NO — see the table")]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
