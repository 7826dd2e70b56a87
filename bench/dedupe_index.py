"""The reprint index at scale, side by side with the anchor: a naive pigeonhole index in Redis sets.

- newswatch: `DedupeIndex` (crawler/dedupe.py), fingerprint and clause evidence, period hashes;
- anchor: four 16-bit blocks of the fingerprint, one Redis set per block value holding the fingerprints
  (hex), k = 3; check-and-insert is one Lua script (SMEMBERS of the 4 sets, Hamming distance, SADD).

Both hold --size articles (default 1,000,000) spread over the 30-day window, loaded by pipelined bulk
writes (numpy builds what the scripts would write; checked against the real script on 300 articles), each
in its own database of a redis-server this script starts on a free port without persistence and stops at
the end (nothing outlives it). Then the same real articles (corpus originals, then hard reprints of them),
evidence computed beforehand, go through both check-and-inserts alternately: p50/p99 of each, memory per
article (INFO used_memory delta of each load), keys per lookup; and a brute-force scan of every stored
article's evidence with numpy must agree with the index on 400 queries.

    python bench/dedupe_index.py [--size N] [--calls N] [--redis-server PATH]

Writes bench/results/dedupe_index.json (dedupe_index_<N>.json for another --size).
"""

from __future__ import annotations

import argparse
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

import make_dedupe_set  # noqa: E402

from crawler import dedupe  # noqa: E402
from crawler.dedupe import DAY, DedupeIndex, Evidence, evidence  # noqa: E402
from newswatch import defaults  # noqa: E402
from newswatch.defaults import Keys  # noqa: E402

RESULTS = ROOT / "bench" / "results"
NOW = 1_739_900_000.0
DAYS = defaults.DEFAULT_DEDUPE_RETENTION_DAYS + 1  # the window: today and the 30 days before
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


def anchor_keys(fp: int) -> list[str]:
    return [f"anchor:{t}:{(fp >> (48 - 16 * t)) & 0xFFFF}" for t in range(4)]


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


def synthetic(n: int, real: list[Evidence], rng: np.random.Generator):
    """n articles' evidence shaped like the corpus: its clause counts and lengths, random hashes."""
    counts = rng.choice([len(e.clauses) for e in real], size=n)
    lengths_pool = np.array([v for e in real for v in e.clauses.values()], dtype=np.int64)
    total = int(counts.sum())
    hashes = rng.integers(0, 2**31, size=total, dtype=np.uint64) * np.uint64(defaults.DEDUPE_CLAUSE_SAMPLE)
    lengths = rng.choice(lengths_pool, size=total)
    owner = np.repeat(np.arange(n), counts)
    fps = rng.integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, size=n, dtype=np.uint64)
    return fps, hashes, lengths, owner, counts


def _hset_grouped(pipe, key: str, names: np.ndarray, records: np.ndarray, name_of) -> None:
    """HSET name -> concatenated records, records kept in their order within a name."""
    order = np.argsort(names, kind="stable")
    names, buf, width = names[order], records[order].tobytes(), records.dtype.itemsize
    uniq, first = np.unique(names, return_index=True)
    bounds = np.append(first, len(names)).tolist()
    mapping = {}
    for j, f in enumerate(uniq.tolist()):
        mapping[name_of(f)] = buf[bounds[j] * width:bounds[j + 1] * width]
        if len(mapping) >= 5000:
            pipe.hset(key, mapping=mapping)
            mapping = {}
    if mapping:
        pipe.hset(key, mapping=mapping)


def bulk_load(index: DedupeIndex, fps, hashes, lengths, owner, counts, limit: int | None = None) -> None:
    """Write what the Lua script writes for these articles (article i on day NOW - i % DAYS), with numpy."""
    n = len(fps) if limit is None else limit
    keep = owner < n
    owner, hashes, lengths = owner[keep], hashes[keep], lengths[keep]
    today = int(NOW // DAY)
    doc_day = today - np.arange(n) % DAYS
    doc_period = doc_day // index.period_days
    pipe = index.client.pipeline(transaction=False)
    for period in np.unique(doc_period).tolist():
        key = index.keys.fp_period(index.period_days, period)
        docs = np.nonzero(doc_period == period)[0]
        docs = docs[np.lexsort((docs, doc_day[docs]))]  # inserted day by day, oldest first
        num = np.zeros(n, dtype=np.int64)
        num[docs] = np.arange(1, len(docs) + 1)
        records = {}
        for i, d in zip(docs.tolist(), doc_day[docs].tolist(), strict=True):
            item, url = f"syn{i}".encode(), f"https://syn/{i}".encode()
            records[b"d%d" % num[i]] = (int(fps[i]).to_bytes(8, "big") + d.to_bytes(4, "big") + (1900).to_bytes(4, "big")
                                        + len(item).to_bytes(2, "big") + item + url)
            if len(records) >= 5000:
                pipe.hset(key, mapping=records)
                records = {}
        if records:
            pipe.hset(key, mapping=records)
        days, per_day = np.unique(doc_day[docs], return_counts=True)
        pipe.hset(key, mapping={"n": len(docs), **{f"c{d}": c for d, c in zip(days.tolist(), per_day.tolist(), strict=True)}})
        rec = np.zeros(len(docs), dtype=[("fp", ">u8"), ("num", "u1", 3)])
        rec["fp"] = fps[docs]
        rec["num"] = np.stack([(num[docs] >> s) & 0xFF for s in (16, 8, 0)], axis=1)
        for t in range(4):
            block = (fps[docs] >> np.uint64(48 - 16 * t)) & np.uint64(0xFFFF)
            _hset_grouped(pipe, key, (block >> np.uint64(4)).astype(np.int64), rec,
                          lambda f, t=t: b"b%d" % t + f.to_bytes(2, "big"))
        # postings in insertion order: by the document's number, then its clauses longest first (as the
        # script receives them: crawler/dedupe.py `longest_first`)
        sel = np.nonzero(doc_period[owner] == period)[0]
        sel = sel[np.lexsort((hashes[sel], -lengths[sel], num[owner[sel]]))]
        crec = np.zeros(len(sel), dtype=[("lo", ">u2"), ("num", "u1", 3)])
        crec["lo"] = hashes[sel] & np.uint64((1 << (32 - dedupe.CLAUSE_FIELD_BITS)) - 1)
        crec["num"] = np.stack([(num[owner[sel]] >> s) & 0xFF for s in (16, 8, 0)], axis=1)
        _hset_grouped(pipe, key, (hashes[sel] >> np.uint64(32 - dedupe.CLAUSE_FIELD_BITS)).astype(np.int64), crec,
                      lambda f: b"s" + f.to_bytes(3, "big"))
        pipe.expire(key, index.expires_in(period, NOW))
        pipe.execute()


def script_load(index: DedupeIndex, fps, hashes, lengths, counts, n: int) -> None:
    """The first n synthetic articles through the real Lua script, one by one, oldest day first."""
    starts = np.concatenate([[0], np.cumsum(counts)])
    for i in sorted(range(n), key=lambda i: (-(i % DAYS), i)):
        ev = Evidence(int(fps[i]), 1900, dict(zip(hashes[starts[i]:starts[i + 1]].tolist(),
                                                  lengths[starts[i]:starts[i + 1]].tolist(), strict=True)))
        index._run("insert", f"syn{i}", f"https://syn/{i}", ev, NOW - (i % DAYS) * DAY)


def anchor_load(client, fps, chunk: int = 200_000) -> None:
    hexes = [f"{int(f):016x}" for f in fps.tolist()]
    for t in range(4):
        block = ((fps >> np.uint64(48 - 16 * t)) & np.uint64(0xFFFF)).astype(np.int64)
        order = np.argsort(block, kind="stable")
        uniq, first = np.unique(block[order], return_index=True)
        bounds = np.append(first, len(order)).tolist()
        pipe = client.pipeline(transaction=False)
        for j, b in enumerate(uniq.tolist()):
            pipe.sadd(f"anchor:{t}:{b}", *[hexes[i] for i in order[bounds[j]:bounds[j + 1]].tolist()])
            if j % 5000 == 4999:
                pipe.execute()
        pipe.execute()


def check_layout(client, fps, hashes, lengths, owner, counts, n: int = 300) -> bool:
    """n articles through the Lua script under one prefix and through bulk_load under another: same data?"""
    via_script, via_bulk = DedupeIndex(client, Keys("layout-script")), DedupeIndex(client, Keys("layout-bulk"))
    script_load(via_script, fps, hashes, lengths, counts, n)
    bulk_load(via_bulk, fps, hashes, lengths, owner, counts, limit=n)
    same = True
    for period in via_script.periods(NOW):
        a = client.hgetall(via_script.keys.fp_period(via_script.period_days, period))
        b = client.hgetall(via_bulk.keys.fp_period(via_bulk.period_days, period))
        same &= a == b and bool(a)
    for prefix in ("layout-script", "layout-bulk"):
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
    return same


class BruteForce:
    """Every stored article's evidence in flat arrays; the rule applied to all of them for each query."""

    def __init__(self, fps, hashes, lengths, owner, ids: list[str], doc_lengths):
        self.fps, self.ids, self.lengths = fps, ids, doc_lengths
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.owner = hashes[order], owner[order]

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


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values), q)) * 1e3, 3)


def run(binary: str, size: int, calls: int) -> dict:
    proc, port = start_server(binary)
    ours_db, anchor_db = redis.Redis(port=port, db=1), redis.Redis(port=port, db=2)
    try:
        version = ours_db.info("server")["redis_version"]
        docs = [json.loads(line)["text"] for line in make_dedupe_set.CORPUS.read_text(encoding="utf-8").splitlines()]
        real = [evidence(d) for d in docs]
        print(f"Redis {version}; {size:,} articles over the {DAYS}-day window; one client")
        fps, hashes, lengths, owner, counts = synthetic(size, real, np.random.default_rng(42))
        same = check_layout(ours_db, fps, hashes, lengths, owner, counts)
        print(f"  bulk loader writes exactly what the Lua script writes (300 articles compared): {same}")
        if not same:
            raise SystemExit("bulk layout differs from the script's: fix bench/dedupe_index.py")
        index = DedupeIndex(ours_db, Keys("bench"))
        memory = {}
        for name, client, load in (("newswatch", ours_db, lambda: bulk_load(index, fps, hashes, lengths, owner, counts)),
                                   ("anchor", anchor_db, lambda: anchor_load(anchor_db, fps))):
            before, started = client.info("memory")["used_memory"], time.perf_counter()
            load()
            memory[name] = {"load_seconds": round(time.perf_counter() - started, 1),
                            "bytes_per_article": round((client.info("memory")["used_memory"] - before) / size, 1)}
            print(f"  {name:<9} loaded in {memory[name]['load_seconds']:.0f} s (pipelined bulk writes): "
                  f"{memory[name]['bytes_per_article']:.0f} bytes per article")
        anchor = anchor_db.register_script(ANCHOR)

        # the same real articles through both, alternately: originals (new), then hard reprints of them
        originals = docs[:500]
        kinds = ("boilerplate+s2twp", "lead-only+edited", "edited+ascii", "s2hk+merged-split+edited")
        pairs = [p for p in make_dedupe_set.build(500) if p["label"] == "reprint" and p["kind"] in kinds]
        queries = [(f"real{i}", f"https://site/{i}", real[i]) for i in range(len(originals))]
        queries += [(f"dup{n}", f"https://other/{n}", evidence(p["b"])) for n, p in enumerate(pairs)]
        queries = queries[:calls]
        ours_ms, anchor_ms, verdicts = [], [], []
        index.upgrade(NOW)  # once per process, as in the crawler: not part of a lookup
        for n, (item, url, ev) in enumerate(queries):
            t = time.perf_counter()
            verdicts.append(index.insert_evidence(item, url, ev, now=NOW + n))
            ours_ms.append(time.perf_counter() - t)
            t = time.perf_counter()
            anchor(keys=anchor_keys(ev.simhash), args=[f"{ev.simhash:016x}", defaults.DEDUPE_MAX_DISTANCE])
            anchor_ms.append(time.perf_counter() - t)
        to_id = {doc: f"real{i}" for i, doc in enumerate(originals)}
        found = sum(v.duplicate and v.original_id == to_id[p["a"]] for v, p in zip(verdicts[500:], pairs, strict=False))
        keys_per_lookup = sorted({len(index.window(NOW + h * 3600)) for h in range(0, 24 * 60, 5)})
        latency = {"newswatch": {"p50_ms": pct(ours_ms, 50), "p99_ms": pct(ours_ms, 99), "max_ms": pct(ours_ms, 100)},
                   "anchor": {"p50_ms": pct(anchor_ms, 50), "p99_ms": pct(anchor_ms, 99), "max_ms": pct(anchor_ms, 100)}}
        for name in ("newswatch", "anchor"):
            print(f"  {name:<9} check-and-insert (evidence computed before), {len(queries)} calls: "
                  f"p50 {latency[name]['p50_ms']:.3f} ms, p99 {latency[name]['p99_ms']:.3f} ms")
        print(f"  reprints matched to their original: {found}/{len(verdicts) - 500}; keys per lookup: "
              f"newswatch {keys_per_lookup} (over 60 days of lookups), anchor 4")

        # brute force over every stored article: the index must find exactly what the rule says
        inserted = [(item, ev) for (item, _, ev), v in zip(queries, verdicts, strict=True) if not v.duplicate]
        ids = [f"syn{i}" for i in range(size)] + [item for item, _ in inserted]
        extra = [ev for _, ev in inserted]
        brute = BruteForce(np.concatenate([fps, np.array([e.simhash for e in extra], dtype=np.uint64)]),
                           np.concatenate([hashes, np.array([h for e in extra for h in e.clauses], dtype=np.uint64)]),
                           None, np.concatenate([owner, np.repeat(np.arange(size, size + len(extra)),
                                                                  [len(e.clauses) for e in extra])]),
                           ids, np.concatenate([np.full(size, 1900), [e.length for e in extra]]))
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
        print(f"  brute force vs index on {len(checks)} queries: {agree} agree, {len(disagreements)} disagree; "
              f"unrelated articles matching anything: {unrelated_matching}")
        for d in disagreements[:5]:
            print("   disagreement:", d)
        return {"redis_version": version, "articles": size, "calls": len(queries), "memory": memory,
                "latency": latency, "keys_per_lookup": {"newswatch": keys_per_lookup, "anchor": 4},
                "bulk_layout_equals_script": same, "reprints_matched_to_original": [found, len(verdicts) - 500],
                "brute_force": {"queries": len(checks), "agree": agree, "disagree": len(disagreements),
                                "unrelated_matching": unrelated_matching}}
    finally:
        ours_db.close()
        anchor_db.close()
        proc.terminate()
        proc.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="articles in each index")
    parser.add_argument("--calls", type=int, default=2500, help="timed check-and-inserts of each")
    parser.add_argument("--redis-server", default=shutil.which("redis-server"))
    args = parser.parse_args(argv)
    # a stopped run still stops its redis-server (the `finally` in `run`)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    results = {"command": "python bench/dedupe_index.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "load_average": os.getloadavg(), **run(args.redis_server, args.size, args.calls)}
    results["seconds"] = round(time.perf_counter() - started)
    out = RESULTS / ("dedupe_index.json" if args.size == 1_000_000 else f"dedupe_index_{args.size}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"{results['seconds']} s in all; written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
