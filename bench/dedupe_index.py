"""The reprint index at scale, side by side with the anchor: a naive pigeonhole index in Redis sets.

- newswatch: `DedupeIndex` (crawler/dedupe.py), fingerprint and clause evidence, period hashes;
- anchor: four 16-bit blocks of the fingerprint, one Redis set per block value holding the fingerprints
  (hex), k = 3; check-and-insert is one Lua script (SMEMBERS of the 4 sets, Hamming distance, SADD).

Both hold --articles synthetic articles (default 1,000,000; shaped like the corpus, ids and URLs as long as
the site's) spread over the 30-day window, written by bench/dedupe_fill.py as protocol bytes built with
numpy, each in a redis-server of its own that this script starts on a free loopback port without
persistence and stops at the end. The fill is first checked byte for byte against the real
check_and_insert path (and the anchor's script) on 300 articles. Then the same real articles (corpus
originals, then hard reprints of them), evidence computed beforehand, go through both check-and-inserts
alternately: p50/p99 of each, as the client sees it and as the server spent it (INFO latencystats), memory per
article (INFO used_memory delta of each fill), keys per lookup; and a brute-force scan of every stored
article's evidence with numpy must agree with the index on 400 queries. The last line is a summary.

    python bench/dedupe_index.py [--articles N] [--calls N] [--redis-server PATH]

Writes bench/results/dedupe_index.{json,txt} (dedupe_index_<N>.{json,txt} for another --articles).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import dedupe_fill as fill  # noqa: E402
import make_dedupe_set  # noqa: E402

from crawler.dedupe import DAY, DedupeIndex, Evidence, evidence  # noqa: E402
from newswatch import defaults  # noqa: E402
from newswatch.defaults import Keys  # noqa: E402

RESULTS = ROOT / "bench" / "results"
NOW = 1_739_900_000.0
LINES: list[str] = []
ANCHOR = """
local fp, maxd = ARGV[1], tonumber(ARGV[2])
local function popcount(x) local n = 0; x = bit.tobit(x); while x ~= 0 do x = bit.band(x, x - 1); n = n + 1 end; return n end
local hi, lo = tonumber(string.sub(fp, 1, 8), 16), tonumber(string.sub(fp, 9, 16), 16)
for t = 1, 4 do
  for _, m in ipairs(redis.call('SMEMBERS', KEYS[t])) do
    local d = popcount(bit.bxor(hi, tonumber(string.sub(m, 1, 8), 16))) + popcount(bit.bxor(lo, tonumber(string.sub(m, 9, 16), 16)))
    if d <= maxd then return {1, m, d} end
  end
end
for t = 1, 4 do redis.call('SADD', KEYS[t], fp) end
return {0}
"""


def say(line: str) -> None:
    print(line, flush=True)
    LINES.append(line)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--protected-mode", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            redis.Redis(port=port).ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{binary} did not start")


def check_fill(client, anchor_client, anchor, real: list[Evidence]) -> list[str]:
    """300 articles through the real scripts under one prefix and through the fast fill under another:
    where the data differ ([] when identical)."""
    arts = fill.synthetic(300, real, np.random.default_rng(7), int(NOW // DAY))
    via_script, via_fill = DedupeIndex(client, Keys("check-script")), DedupeIndex(client, Keys("check-fill"))
    fill.script_fill(via_script, arts, NOW)
    fill.fill(via_fill, arts, NOW)
    found = fill.differences(client, via_script, via_fill, NOW)
    for fp in arts.fps.tolist():
        anchor(keys=fill.anchor_keys(fp, "check-script"), args=[f"{fp:016x}", defaults.DEDUPE_MAX_DISTANCE])
    fill.fill_anchor(anchor_client, arts.fps, "check-fill")
    for fp in arts.fps.tolist():
        for a, b in zip(fill.anchor_keys(fp, "check-script"), fill.anchor_keys(fp, "check-fill"), strict=True):
            if anchor_client.smembers(a) != anchor_client.smembers(b):
                found.append(f"anchor {a} vs {b}")
    for each in (client, anchor_client):
        for prefix in ("check-script", "check-fill"):
            for key in each.scan_iter(match=f"{prefix}:*", count=1000):
                each.delete(key)
    return found


class BruteForce:
    """Every stored article's evidence in flat arrays; the rule applied to all of them for each query."""

    def __init__(self, arts: fill.Articles, extra: list[tuple[str, Evidence]]):
        n = len(arts)
        self.n, self.extra_ids = n, [item for item, _ in extra]
        self.fps = np.concatenate([arts.fps, np.array([e.simhash for _, e in extra], dtype=np.uint64)])
        self.lengths = np.concatenate([np.full(n, fill.ARTICLE_CHARS), [e.length for _, e in extra]])
        # (clause hash, article) in one sorted uint64: a clause's holders are one contiguous run
        owners = np.concatenate([arts.owners(), np.repeat(np.arange(n, n + len(extra), dtype=np.uint32),
                                                          [len(e.clauses) for _, e in extra])])
        self.postings = np.concatenate([arts.hashes, np.array([h for _, e in extra for h in e.clauses], dtype=np.uint32)]
                                       ).astype(np.uint64) << np.uint64(32)
        self.postings |= owners
        del owners
        self.postings.sort()

    def matches(self, ev: Evidence, min_chars: int) -> set[str]:
        if ev.length < min_chars:
            return set()
        dist = np.bitwise_count(self.fps ^ np.uint64(ev.simhash))
        hit = set(np.nonzero(dist <= defaults.DEDUPE_MAX_DISTANCE)[0].tolist())
        shared: dict[int, int] = {}
        for h, length in ev.clauses.items():
            lo, hi = np.searchsorted(self.postings, np.array([h << 32, (h + 1) << 32], dtype=np.uint64))
            for doc in (self.postings[lo:hi] & np.uint64(0xFFFFFFFF)).tolist():
                shared[doc] = shared.get(doc, 0) + length
        for doc, s in shared.items():
            if (s >= defaults.DEDUPE_MIN_SHARED_CHARS and self.lengths[doc] >= min_chars
                    and s * 1000 >= defaults.DEDUPE_CONTAINMENT_PER_MILLE * ev.weight):
                hit.add(doc)
        return {fill.item_id(d) if d < self.n else self.extra_ids[d - self.n] for d in hit}


def ms(values, q: float) -> float:
    return round(float(np.percentile(np.array(values), q)) * 1e3, 3)


def server_time(client) -> dict[str, float]:
    """p50/p99 (ms) of EVALSHA since the last CONFIG RESETSTAT, as the server measured it (Redis 7's
    latency histograms: scripts only, not the commands they call, which SLOWLOG would also log)."""
    stats = client.info("latencystats").get("latency_percentiles_usec_evalsha", {})
    return {f"server_{q}_ms": round(float(stats.get(q, "nan")) / 1e3, 3) for q in ("p50", "p99")}


def run(binary: str, size: int, calls: int) -> dict:
    # one server each, so that used_memory, the latency histograms and the caches are each index's own
    (proc, port), (anchor_proc, anchor_port) = start_server(binary), start_server(binary)
    ours_db, anchor_db = redis.Redis(port=port), redis.Redis(port=anchor_port)
    try:
        version = ours_db.info("server")["redis_version"]
        docs = [json.loads(line)["text"] for line in make_dedupe_set.CORPUS.read_text(encoding="utf-8").splitlines()]
        real = [evidence(d) for d in docs]
        say(f"Redis {version}; {size:,} articles over the {fill.DAYS}-day window; one client")
        anchor = anchor_db.register_script(ANCHOR)
        problems = check_fill(ours_db, anchor_db, anchor, real)
        say(f"  fast fill writes exactly what check_and_insert writes (300 articles, both indexes): {not problems}")
        if problems:
            raise SystemExit("the fill differs from the scripts: fix bench/dedupe_fill.py\n" + "\n".join(problems[:20]))
        started = time.perf_counter()
        arts = fill.synthetic(size, real, np.random.default_rng(42), int(NOW // DAY))
        say(f"  {size:,} synthetic articles ({len(arts.hashes) / size:.1f} clauses each) made in "
            f"{time.perf_counter() - started:.0f} s")
        index = DedupeIndex(ours_db, Keys("bench"))
        memory = {}
        for name, client, load in (("newswatch", ours_db, lambda: fill.fill(index, arts, NOW)),
                                   ("anchor", anchor_db, lambda: fill.fill_anchor(anchor_db, arts.fps))):
            before, started = client.info("memory")["used_memory"], time.perf_counter()
            load()
            memory[name] = {"load_seconds": round(time.perf_counter() - started, 1),
                            "bytes_per_article": round((client.info("memory")["used_memory"] - before) / size, 1)}
            say(f"  {name:<9} filled in {memory[name]['load_seconds']:.0f} s: "
                f"{memory[name]['bytes_per_article']:.0f} bytes per article")

        # the same real articles through both, alternately: originals (new), then hard reprints of them
        originals = docs[:500]
        kinds = ("boilerplate+s2twp", "lead-only+edited", "edited+ascii", "s2hk+merged-split+edited")
        pairs = [p for p in make_dedupe_set.build(500) if p["label"] == "reprint" and p["kind"] in kinds]
        queries = [(f"real{i}", f"https://site/{i}", real[i]) for i in range(len(originals))]
        queries += [(f"dup{n}", f"https://other/{n}", evidence(p["b"])) for n, p in enumerate(pairs)]
        queries = queries[:calls]
        index.upgrade(NOW)  # once per process, as in the crawler: not part of a lookup
        # Python-side work of a call before the round trip (key names, packed arguments), timed apart
        args_s = []
        for n, (item, url, ev) in enumerate(queries):
            t = time.perf_counter()
            index.window(NOW + n), index.script_args("insert", item, url, ev, NOW + n)
            args_s.append(time.perf_counter() - t)
        for client in (ours_db, anchor_db):
            client.config_set("latency-monitor-threshold", 1)
            client.config_resetstat()
        ours_s, anchor_s, verdicts = [], [], []
        gc.collect()
        gc.freeze()  # the bench's own heap (corpus, pairs) is not the crawler's: keep its collections out
        for n, (item, url, ev) in enumerate(queries):
            t = time.perf_counter()
            verdicts.append(index.insert_evidence(item, url, ev, now=NOW + n))
            ours_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            anchor(keys=fill.anchor_keys(ev.simhash), args=[f"{ev.simhash:016x}", defaults.DEDUPE_MAX_DISTANCE])
            anchor_s.append(time.perf_counter() - t)
        gc.unfreeze()
        server = {"newswatch": server_time(ours_db), "anchor": server_time(anchor_db)}
        spikes = {name: [[x.decode() if isinstance(x, bytes) else x for x in e]
                         for e in client.execute_command("LATENCY", "LATEST")]
                  for name, client in (("newswatch", ours_db), ("anchor", anchor_db))}
        to_id = {doc: f"real{i}" for i, doc in enumerate(originals)}
        found = sum(v.duplicate and v.original_id == to_id[p["a"]] for v, p in zip(verdicts[500:], pairs, strict=False))
        keys_per_lookup = sorted({len(index.window(NOW + h * 3600)) for h in range(0, 24 * 60, 5)})
        latency = {name: {"p50_ms": ms(client_s, 50), "p99_ms": ms(client_s, 99), "max_ms": ms(client_s, 100),
                          **server[name]}
                   for name, client_s in (("newswatch", ours_s), ("anchor", anchor_s))}
        latency["newswatch"].update(args_p50_ms=ms(args_s, 50), args_p99_ms=ms(args_s, 99))
        for name in ("newswatch", "anchor"):
            lat = latency[name]
            say(f"  {name:<9} check-and-insert, {len(queries)} calls: p50 {lat['p50_ms']:.3f} ms, p99 "
                f"{lat['p99_ms']:.3f} ms (max {lat['max_ms']:.1f}); in the server: p50 "
                f"{lat['server_p50_ms']:.3f} ms, p99 {lat['server_p99_ms']:.3f} ms")
        say(f"  newswatch's Python before the round trip (keys, arguments): p50 {latency['newswatch']['args_p50_ms']:.3f}"
            f" ms, p99 {latency['newswatch']['args_p99_ms']:.3f} ms; server events >= 1 ms (LATENCY LATEST: "
            f"event, time, latest ms, max ms): {spikes}")
        say(f"  reprints matched to their original: {found}/{len(verdicts) - 500}; keys per lookup: "
            f"newswatch {keys_per_lookup} (over 60 days of lookups), anchor 4")

        # brute force over every stored article: the index must find exactly what the rule says
        started = time.perf_counter()
        inserted = [(item, ev) for (item, _, ev), v in zip(queries, verdicts, strict=True) if not v.duplicate]
        brute = BruteForce(arts, inserted)
        checks = [(evidence(p["b"]), "reprint") for p in pairs[:300]] + [(real[i], "unrelated") for i in range(500, 600)]
        agree, unrelated_matching, disagreements = 0, 0, []
        for ev, what in checks:
            want = brute.matches(ev, index.min_chars)
            got = index._run("check", "", "", ev, NOW + 7200)
            ok = got.duplicate == bool(want) and (not got.duplicate or got.original_id in want)
            agree += ok
            unrelated_matching += what == "unrelated" and bool(want)
            if not ok:
                disagreements.append((what, got, sorted(want)[:5]))
        say(f"  brute force vs index on {len(checks)} queries: {agree} agree, {len(disagreements)} disagree; "
            f"unrelated articles matching anything: {unrelated_matching} ({time.perf_counter() - started:.0f} s)")
        for d in disagreements[:5]:
            say(f"   disagreement: {d}")
        return {"redis_version": version, "articles": size, "calls": len(queries), "memory": memory,
                "latency": latency, "latency_latest": spikes,
                "keys_per_lookup": {"newswatch": keys_per_lookup, "anchor": 4},
                "fill_equals_scripts": not problems, "reprints_matched_to_original": [found, len(verdicts) - 500],
                "brute_force": {"queries": len(checks), "agree": agree, "disagree": len(disagreements),
                                "unrelated_matching": unrelated_matching}}
    finally:
        for client, server_proc in ((ours_db, proc), (anchor_db, anchor_proc)):
            client.close()
            server_proc.terminate()
            server_proc.wait(timeout=60)


def summary(r: dict) -> str:
    ours, anchor = r["latency"]["newswatch"], r["latency"]["anchor"]
    bf = r["brute_force"]
    load = "/".join(f"{x:.1f}" for x in r["load_average"][:1] + r["load_average_after"][:1])
    return (f"SUMMARY {r['articles']:,} articles: p50/p99 newswatch {ours['p50_ms']:.2f}/{ours['p99_ms']:.2f} ms "
            f"(server {ours['server_p50_ms']:.2f}/{ours['server_p99_ms']:.2f}) vs anchor {anchor['p50_ms']:.2f}/"
            f"{anchor['p99_ms']:.2f} ms (server {anchor['server_p50_ms']:.2f}/{anchor['server_p99_ms']:.2f}); "
            f"{r['memory']['newswatch']['bytes_per_article']:.0f} vs {r['memory']['anchor']['bytes_per_article']:.0f}"
            f" B/article; keys/lookup {max(r['keys_per_lookup']['newswatch'])} vs 4; brute force "
            f"{bf['agree']}/{bf['queries']} agree; {r['seconds']} s in all; load {load} before/after "
            f"({os.cpu_count()} cores)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", "--size", dest="articles", type=int, default=1_000_000,
                        help="articles in each index")
    parser.add_argument("--calls", type=int, default=2500, help="timed check-and-inserts of each")
    parser.add_argument("--redis-server", default=shutil.which("redis-server"))
    args = parser.parse_args(argv)
    # a stopped run still stops its redis-server (the `finally` in `run`)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    results = {"command": "python bench/dedupe_index.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "load_average": os.getloadavg(), **run(args.redis_server, args.articles, args.calls)}
    results["seconds"] = round(time.perf_counter() - started)
    results["load_average_after"] = os.getloadavg()
    name = "dedupe_index" if args.articles == 1_000_000 else f"dedupe_index_{args.articles}"
    say(summary(results))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    (RESULTS / f"{name}.txt").write_text("\n".join(LINES) + "\n")
    print(f"written to bench/results/{name}.json and .txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
