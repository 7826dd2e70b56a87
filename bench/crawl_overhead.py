"""Crawl overhead: a newswatch pass vs a bare Scrapy spider over the same 2,000-article replica.

    python bench/crawl_overhead.py [--articles 2000] [--per-page 40] [--concurrency 16] [--repeat 3]
                                   [--profile] [--redis-url URL]

What is measured. One replica server (bench/replica_server.py: tests/replica.py's pages, pre-rendered,
served from memory by its own process) with N articles, 40 per list page so 50 list pages hold 2,000.
Every other article is on topic (a topic fixture's title, lead and first paragraph over a People's Daily
document): the pipeline does its full work on half of them (extract → topic → dedupe → XADD); as the 600
documents repeat, the later on-topic copies are recorded as reprints. The other half is extracted and
dropped by the topic filter, as most pages of the real site are.

  newswatch: `newswatch crawl --json --quiet` (a child process, a fresh key prefix in Redis) with
             NEWSWATCH_CONCURRENCY=16, NEWSWATCH_DOWNLOAD_DELAY=0, NEWSWATCH_AUTOTHROTTLE=0,
             NEWSWATCH_MAX_PAGES=50.
  anchor:    a bare Scrapy spider (this file, `--bare` child) with the same concurrency, delay 0, no
             AutoThrottle, robots.txt obeyed: list page 1 → its article links and page 2 → … → page 50,
             article pages fetched and not parsed; no pipeline, no Redis.

Pages per second = (list pages + article pages answered 200) / the pass's duration, measured the same way
in both children: from before `CrawlerProcess` is built until the reactor stops (so newswatch's items,
released when the pass is idle, are counted in). The two crawls alternate, `--repeat` times each; the
median is reported. Peak RSS is the largest sum of RSS over the child's process tree, sampled every 50 ms.
CPU seconds are given for the child's tree (user + system, its analysis process included) and for the
crawling process alone (its own user + system at the last 50 ms sample).
The replica server's CPU time is reported too, to show whether the server limits the anchor.

With `--before DIR` (a checkout of an older commit, e.g. `git archive 9eb40b0 | tar -x -C DIR`), a third
crawl runs that code (`newswatch crawl` imported from DIR) in the same rotation: before/after, side by side.

With `--profile`, one more newswatch pass runs in-process under pyinstrument (run_pass), and its top frames
are written to bench/results/crawl_overhead_profile.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from replica_server import ReplicaServer  # noqa: E402
from report import write_report  # noqa: E402

VENV_BIN = Path(sys.executable).parent
NEWSWATCH = str(VENV_BIN / "newswatch")


# --- the anchor: a bare Scrapy spider ------------------------------------------------------------------

def bare_child(site_url: str, concurrency: int, max_pages: int) -> None:
    import scrapy
    from scrapy.crawler import CrawlerProcess

    class BareSpider(scrapy.Spider):
        name = "bare"

        async def start(self):
            yield scrapy.Request(f"{site_url}/international?page=1", callback=self.parse_list,
                                 cb_kwargs={"page": 1})

        def parse_list(self, response, page):
            links = response.css("article .entry-title a::attr(href)").getall()
            for href in links:
                yield response.follow(href, callback=self.parse_article)
            if links and page < max_pages:
                yield scrapy.Request(f"{site_url}/international?page={page + 1}", callback=self.parse_list,
                                     cb_kwargs={"page": page + 1})

        def parse_article(self, response):
            return None

    started = time.time()
    process = CrawlerProcess({
        "ROBOTSTXT_OBEY": True, "COOKIES_ENABLED": False, "TELNETCONSOLE_ENABLED": False,
        "CONCURRENT_REQUESTS": concurrency, "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False, "LOG_ENABLED": False, "STATS_DUMP": False,
        "LOGSTATS_INTERVAL": 0, "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
    })
    crawler = process.create_crawler(BareSpider)
    process.crawl(crawler)
    process.start()
    stats = crawler.stats.get_stats()
    print(json.dumps({"duration": time.time() - started,
                      "requests": stats.get("downloader/request_count", 0),
                      "bytes": stats.get("downloader/response_bytes", 0),
                      "finish_reason": stats.get("finish_reason")}))


# --- running and measuring a child ---------------------------------------------------------------------

def run_measured(cmd: list[str], env: dict) -> tuple[dict, int, float, float, float]:
    """Run a child; returns (its JSON summary, peak RSS of its process tree in bytes, wall seconds, CPU
    seconds of the child and its descendants: user + system, independent of other load on the machine,
    and the child's own CPU seconds: the crawling process without its analysis process, as last sampled)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak, own = 0, 0.0
    while proc.poll() is None:
        try:
            total = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak = max(peak, total)
            times = ps.cpu_times()
            own = times.user + times.system
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = None
    for line in out.splitlines():
        if line.startswith("{"):
            summary = json.loads(line)
    if proc.returncode != 0 or summary is None:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}): {err[-2000:]}")
    return summary, peak, wall, cpu, own


def served(server: ReplicaServer) -> dict:
    log = server.call("log")
    ok = [e for e in log if e[2] == 200]
    return {"lists": sum(1 for e in ok if "?page=" in e[1]),
            "articles": sum(1 for e in ok if e[1].endswith(".html")),
            "robots": sum(1 for e in log if e[1] == "/robots.txt"),
            "requests": len(log), "bytes": sum(e[3] for e in log),
            "max_article_fetches": max((n for p, n in server.call("article_requests").items()
                                        if p.endswith(".html")), default=0)}


def server_cpu(server: ReplicaServer) -> float:
    t = psutil.Process(server.pid).cpu_times()
    return t.user + t.system


def newswatch_env(redis_url: str, prefix: str, data_dir: str, site_url: str, concurrency: int,
                  **settings: str) -> dict:
    """The environment of a benchmarked `newswatch` process: politeness as the anchor's (the given
    concurrency, no delay, no AutoThrottle), its own key prefix and data folder; `settings` add NAME=value
    for NEWSWATCH_NAME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    env.update({
        "NEWSWATCH_REDIS_URL": redis_url, "NEWSWATCH_KEY_PREFIX": prefix, "NEWSWATCH_DATA_DIR": data_dir,
        "NEWSWATCH_SITE_URL": site_url, "NEWSWATCH_CONCURRENCY": str(concurrency),
        "NEWSWATCH_DOWNLOAD_DELAY": "0", "NEWSWATCH_AUTOTHROTTLE": "0", "NEWSWATCH_LOG_LEVEL": "error",
    })
    env.update({f"NEWSWATCH_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def cleanup(client: redis.Redis, prefix: str) -> None:
    stale = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for n in range(0, len(stale), 1000):
        client.delete(*stale[n:n + 1000])


def profile_pass(args, site_url: str, out: Path) -> str:
    """One newswatch pass in a child under pyinstrument; returns the text report."""
    prefix = f"nwbench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as data_dir:
        env = newswatch_env(args.redis_url, prefix, data_dir, site_url, args.concurrency,
                            max_pages=args.max_pages)
        code = (
            "import sys; from pyinstrument import Profiler\n"
            "from newswatch.config import Settings; from crawler.run import run_pass\n"
            "s = Settings.load()\n"
            "p = Profiler(interval=0.001); p.start(); summary = run_pass(s); p.stop()\n"
            "print(p.output_text(unicode=True, color=False, show_all=False))\n"
            "print('summary:', summary['counts'], summary['duration'])\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
        cleanup(redis.Redis.from_url(args.redis_url), prefix)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    out.write_text(proc.stdout, encoding="utf-8")
    return proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--per-page", type=int, default=40)
    parser.add_argument("--max-pages", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--before", metavar="DIR", help="also crawl with the newswatch code checked out in DIR")
    parser.add_argument("--redis-url", default=os.environ.get("NEWSWATCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "crawl_overhead.txt"))
    parser.add_argument("--bare", metavar="SITE_URL", help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.bare:
        bare_child(args.bare, args.concurrency, args.max_pages)
        return 0

    client = redis.Redis.from_url(args.redis_url)
    redis_version = client.info("server")["redis_version"]
    load_before = os.getloadavg()
    server = ReplicaServer(("crawl", {"articles": args.articles, "per_page": args.per_page}))
    results: dict[str, list[dict]] = {"newswatch": [], "bare": []}
    if args.before:
        results["before"] = []
    try:
        for _ in range(args.repeat):
            for kind in results:
                server.call("reset_counts")
                cpu0 = server_cpu(server)
                load = os.getloadavg()[0]
                if kind == "bare":
                    summary, peak, wall, cpu, own = run_measured(
                        [sys.executable, __file__, "--bare", server.url, "--concurrency", str(args.concurrency),
                         "--max-pages", str(args.max_pages)], dict(os.environ))
                    counts = {}
                else:
                    prefix = f"nwbench-{uuid.uuid4().hex[:8]}"
                    cmd = [NEWSWATCH, "crawl", "--json", "--quiet"]
                    if kind == "before":  # the same command, its modules imported from the older checkout
                        cmd = [sys.executable, "-c", f"import sys; sys.path.insert(0, {args.before!r}); "
                               "sys.argv = ['newswatch', 'crawl', '--json', '--quiet']; "
                               "import newswatch.cli; sys.exit(newswatch.cli.main())"]
                    with tempfile.TemporaryDirectory() as data_dir:
                        try:
                            summary, peak, wall, cpu, own = run_measured(
                                cmd, newswatch_env(args.redis_url, prefix, data_dir, server.url,
                                              args.concurrency, max_pages=args.max_pages))
                        finally:
                            cleanup(client, prefix)
                    counts = summary["counts"]
                pages = served(server)
                n = pages["lists"] + pages["articles"]
                results[kind].append({"pages": n, "duration": summary["duration"], "rate": n / summary["duration"],
                                      "peak_rss": peak, "wall": wall, "cpu": cpu, "own_cpu": own, "server_cpu": server_cpu(server) - cpu0,
                                      "served": pages, "counts": counts, "load": load})
                r = results[kind][-1]
                print(f"  {kind:9s} {n} pages in {r['duration']:.2f} s = {r['rate']:.0f} pages/s; "
                      f"crawler CPU {cpu:.2f} s (own process {own:.2f}); server CPU {r['server_cpu']:.2f} s; peak RSS {peak / 2**20:.0f} MiB; load {load:.2f}",
                      flush=True)
        profile_text = None
        if args.profile:
            profile_text = profile_pass(args, server.url, Path(args.out).with_name("crawl_overhead_profile.txt"))
    finally:
        server.stop()

    def med(kind, key):
        return statistics.median(r[key] for r in results[kind])

    nw, bare = med("newswatch", "rate"), med("bare", "rate")
    last = results["newswatch"][-1]
    c = last["counts"]
    cpu_model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    lines = [
        f"newswatch crawl overhead benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"machine: {cpu_model}, nproc {os.cpu_count()}, {platform.platform()}, Python {platform.python_version()}, "
        f"Redis {redis_version}; load average before {load_before[0]:.2f} (shared machine)",
        f"command: python bench/crawl_overhead.py --articles {args.articles} --per-page {args.per_page} "
        f"--concurrency {args.concurrency} --repeat {args.repeat}" + (" --profile" if args.profile else "")
        + (f" --before {args.before}" if args.before else ""),
        f"replica: {args.articles} articles, {args.per_page} per list page, pre-rendered ({server.prerendered} "
        "pages) and served from memory by a ThreadingHTTPServer in its own process",
        "",
        f"pages per second (list + article pages answered 200, / pass duration), median of {args.repeat}:",
        f"  newswatch crawl (extract, topic, dedupe, XADD): {nw:7.0f} pages/s   runs: "
        + ", ".join(f"{r['rate']:.0f}" for r in results["newswatch"]),
        f"  anchor: bare Scrapy spider, no pipeline:        {bare:7.0f} pages/s   runs: "
        + ", ".join(f"{r['rate']:.0f}" for r in results["bare"]),
        f"  ratio newswatch / bare:                         {nw / bare:7.2f}   (target >= 0.85)",
        "",
        f"pass duration (s), median: newswatch {med('newswatch', 'duration'):.2f}, bare {med('bare', 'duration'):.2f}; "
        f"child wall time incl. interpreter start-up: newswatch {med('newswatch', 'wall'):.2f}, "
        f"bare {med('bare', 'wall'):.2f}",
        f"crawler CPU seconds (user+sys of the child tree, whole process incl. start-up), median: newswatch "
        f"{med('newswatch', 'cpu'):.2f}, bare {med('bare', 'cpu'):.2f}; pages per CPU second: newswatch "
        f"{statistics.median(r['pages'] / r['cpu'] for r in results['newswatch']):.0f}, bare "
        f"{statistics.median(r['pages'] / r['cpu'] for r in results['bare']):.0f} (a load-independent view)",
        "CPU seconds of the crawling process alone (Scrapy's process, without the analysis process; sampled "
        f"every 50 ms), median: newswatch {med('newswatch', 'own_cpu'):.2f}, bare {med('bare', 'own_cpu'):.2f}",
        f"replica server CPU seconds per crawl, median: newswatch {med('newswatch', 'server_cpu'):.2f}, "
        f"bare {med('bare', 'server_cpu'):.2f} (of the pass durations above: the server's share of one core)",
        f"pages served per crawl: newswatch {last['served']}, bare {results['bare'][-1]['served']}",
        f"newswatch counts (last run): fetched {c.get('fetched')}, new {c.get('new')}, reprints {c.get('reprints')}, "
        f"off topic {c.get('off_topic')}, errors {c.get('errors')}, requests {c.get('requests')}",
        "",
        f"peak RSS of the crawl's process tree (max of {args.repeat}): newswatch "
        f"{max(r['peak_rss'] for r in results['newswatch']) / 2**20:.0f} MiB, bare "
        f"{max(r['peak_rss'] for r in results['bare']) / 2**20:.0f} MiB",
        "load average (1 min) at each run: " + ", ".join(f"{r['load']:.2f}" for k in results for r in results[k]),
    ]
    if args.before:
        lines += ["", f"before/after: the code in {args.before}, same rotation: "
                  f"{med('before', 'rate'):.0f} pages/s (runs: "
                  + ", ".join(f"{r['rate']:.0f}" for r in results["before"])
                  + f"), CPU {med('before', 'cpu'):.2f} s (own process {med('before', 'own_cpu'):.2f}), "
                  f"peak RSS {max(r['peak_rss'] for r in results['before']) / 2**20:.0f} MiB, ratio to bare {med('before', 'rate') / bare:.2f}; "
                  f"now {nw:.0f} pages/s, CPU {med('newswatch', 'cpu'):.2f} s (own process {med('newswatch', 'own_cpu'):.2f})"]
    if profile_text:
        lines += ["", "profile: bench/results/crawl_overhead_profile.txt (pyinstrument on run_pass)"]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
