"""Recall per reprint kind and false positives per distinct kind: newswatch vs the PyPI `simhash` package.

newswatch is measured through `crawler.dedupe.compare`, the function behind `newswatch dedupe` and the
pipeline's rule; the anchor is `simhash.Simhash(text)` with its defaults, duplicate at distance <= 3.

    python bench/dedupe_quality.py [--set PATH] [--limit N]

Writes bench/results/dedupe_quality.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import make_dedupe_set  # noqa: E402
from simhash import Simhash  # noqa: E402  (PyPI package; `crawler.simhash` is ours)

from crawler.dedupe import compare  # noqa: E402
from newswatch import defaults  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "dedupe_quality.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=Path, help="pairs from make_dedupe_set.py (default: build them now)")
    parser.add_argument("--limit", type=int, default=600, help="corpus documents when building the set")
    parser.add_argument("--show-misses", type=int, default=0, help="print this many misses per kind")
    args = parser.parse_args(argv)
    if args.set:
        pairs = [json.loads(line) for line in args.set.read_text(encoding="utf-8").splitlines()]
    else:
        pairs = make_dedupe_set.build(args.limit)

    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    labels: dict[str, str] = {}
    shown: dict[str, int] = defaultdict(int)
    started = time.perf_counter()
    for pair in pairs:
        kind, label = pair["kind"], pair["label"]
        labels[kind] = label
        ours = compare(pair["a"], pair["b"], min_chars=defaults.DEFAULT_DEDUPE_MIN_CHARS)
        theirs = Simhash(pair["a"]).distance(Simhash(pair["b"])) <= 3
        c = counts[kind]
        c["pairs"] += 1
        c["newswatch"] += ours.duplicate
        c["pypi_simhash"] += theirs
        if ours.duplicate == (label == "distinct") and shown[kind] < args.show_misses:
            shown[kind] += 1
            print(f"MISS {kind}: {ours}\n  a={pair['a'][:80]!r}\n  b={pair['b'][:80]!r}")
    elapsed = time.perf_counter() - started

    def table(label: str, what: str) -> dict:
        rows = {k: dict(c) for k, c in counts.items() if labels[k] == label}
        total = {key: sum(r[key] for r in rows.values()) for key in ("pairs", "newswatch", "pypi_simhash")}
        print(f"\n{what:<34} {'pairs':>6} {'newswatch':>10} {'pypi simhash d<=3':>18}")
        for kind, r in list(rows.items()) + [("ALL", total)]:
            if label == "reprint":
                ours, theirs = r["newswatch"] / r["pairs"], r["pypi_simhash"] / r["pairs"]
                print(f"{kind:<34} {r['pairs']:>6} {ours:>10.3f} {theirs:>18.3f}")
            else:
                print(f"{kind:<34} {r['pairs']:>6} {r['newswatch']:>10d} {r['pypi_simhash']:>18d}")
        return {"kinds": rows, "all": total}

    reprints = table("reprint", "recall (reprints caught)")
    distinct = table("distinct", "false positives (distinct dropped)")
    all_r = reprints["all"]
    worst = min(r["newswatch"] / r["pairs"] for r in reprints["kinds"].values())
    print(f"\nnewswatch: recall {all_r['newswatch'] / all_r['pairs']:.4f} overall, {worst:.4f} worst kind, "
          f"{distinct['all']['newswatch']} false positives; pypi simhash: recall "
          f"{all_r['pypi_simhash'] / all_r['pairs']:.4f}, {distinct['all']['pypi_simhash']} false positives")
    print(f"{len(pairs)} pairs in {elapsed:.1f} s (both methods)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "command": "python bench/dedupe_quality.py" + (f" --limit {args.limit}" if args.limit != 600 else ""),
        "machine": f"{platform.machine()} {platform.processor() or ''} {platform.python_version()}".strip(),
        "rule": {"max_distance": defaults.DEDUPE_MAX_DISTANCE,
                 "containment_per_mille": defaults.DEDUPE_CONTAINMENT_PER_MILLE,
                 "min_shared_chars": defaults.DEDUPE_MIN_SHARED_CHARS,
                 "min_clause_chars": defaults.DEDUPE_MIN_CLAUSE_CHARS, "clause_sample": defaults.DEDUPE_CLAUSE_SAMPLE,
                 "min_chars": defaults.DEFAULT_DEDUPE_MIN_CHARS},
        "reprints": reprints, "distinct": distinct,
    }, ensure_ascii=False, indent=1) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
