"""Topic recall per naming group and false positives: today's rule (v1) and the new one side by side.

    python bench/topic_quality.py [--part tuning|held-out|both] [--compare] [--show-misses]

The set is bench/data/topic/*.jsonl (how it was made: bench/data/topic/README.md), split by
bench/topic_set.py into a tuning part and a held-out fifth. Each rule judges every article as written;
mainland and Singapore articles (Simplified) also as the site serves them (OpenCC s2t). Rules:
  v1   the rule and topic file before aliases (frozen: bench/topic_v1.py, bench/data/topic/v1/)
  new  crawler/topic.py with the shipped topic (or --topic PATH)
--compare adds the candidate readings of the new topic compared in docs/topics.md (same terms and
aliases, different context). Writes bench/results/topic_quality.json and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import topic_set  # noqa: E402
import topic_v1  # noqa: E402

from crawler.topic import load_topic  # noqa: E402

SECOND_TOPIC = ROOT / "crawler" / "topics" / "china_us_trade_talks.toml"
RESULTS = ROOT / "bench" / "results" / "topic_quality.json"
V1_TOPIC = ROOT / "bench" / "data" / "topic" / "v1" / "us_russia_talks.toml"
GROUPS = ("mainland", "taiwan", "hongkong", "singapore")


def rules(topic_path: Path | None, compare: bool) -> dict:
    new = load_topic(topic_path)
    out = {"v1": topic_v1.load_topic(V1_TOPIC), "new": new}
    if compare:
        plain = dict(context=0, carry=0.0, title_carry=0.0, borrow=0)
        out["aliases, window alone"] = dataclasses.replace(new, **plain, against_factor=1.0)
        out["aliases + title names another story"] = dataclasses.replace(new, **plain)
        out["adjacent windows, no title rule"] = dataclasses.replace(new, against_factor=1.0)
        out["two windows either side"] = dataclasses.replace(new, context=2)
        out["whole document as context"] = dataclasses.replace(new, context=10_000)
    return out


def evaluate(rule, rows: list[dict]) -> dict:
    found: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # group/reading -> [found, of]
    fp = [0, 0]
    misses, false_positives = [], []
    judged = 0
    for row in rows:
        for reading, title, body in topic_set.readings(row):
            got = rule.match(title, body)
            judged += 1
            key = row["naming"] + ("" if reading == "written" and row["naming"] not in topic_set.SIMPLIFIED_GROUPS
                                   else f" ({reading})")
            if row["label"] == "on":
                found[key][1] += 1
                found[key][0] += got.on_topic
                if not got.on_topic:
                    misses.append({"id": row["id"], "class": row["style"], "reading": reading,
                                   "score": got.score, "title": title})
            else:
                fp[1] += 1
                fp[0] += got.on_topic
                if got.on_topic:
                    false_positives.append({"id": row["id"], "class": row["near_miss_class"], "reading": reading,
                                            "score": got.score, "title": title,
                                            "passages": getattr(got, "passages", [])})
    return {
        "recall": {k: {"found": v[0], "of": v[1], "recall": round(v[0] / v[1], 3)} for k, v in sorted(found.items())},
        "false_positives": {"kept": fp[0], "of": fp[1], "rate": round(fp[0] / fp[1], 3) if fp[1] else None},
        "misses_by_class": dict(Counter(m["class"] for m in misses)),
        "false_positives_by_class": dict(Counter(m["class"] for m in false_positives)),
        "misses": misses, "false_positive_rows": false_positives,
        "articles_judged": judged,
    }


def timings(candidates: dict, texts: list[tuple[str, str]], repeats: int = 5) -> dict[str, float]:
    """CPU ms per article for each rule: the fastest of `repeats` passes over `texts`, the rules taking
    turns; CPU time (not wall time), so that load from other processes on the machine counts less."""
    best = dict.fromkeys(candidates, float("inf"))
    for _ in range(repeats):
        for name, rule in candidates.items():
            start = time.process_time()
            for title, body in texts:
                rule.match(title, body)
            best[name] = min(best[name], time.process_time() - start)
    return {name: round(1000 * seconds / len(texts), 3) for name, seconds in best.items()}


def crawl_pages() -> list[tuple[str, str]]:
    """What the crawl benchmarks serve (tests/replica.py): the 600 People's Daily 1998 documents, long,
    mostly off topic, in Traditional script."""
    from tests.replica import corpus

    out = []
    for doc in corpus():
        lines = [topic_set.served(line) for line in doc["text"].split("\n") if line.strip()]
        out.append((lines[0], "\n".join(lines[1:])))
    return out


def table(results: dict, part: str) -> str:
    names = list(results)
    keys = sorted({k for r in results.values() for k in r["recall"]})
    lines = [f"## {part}", "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key in keys:
        cells = []
        for name in names:
            cell = results[name]["recall"].get(key)
            cells.append(f"{cell['found']}/{cell['of']} ({cell['recall']:.2f})" if cell else "–")
        lines.append(f"| recall {key} | " + " | ".join(cells) + " |")
    cells = [f"{r['false_positives']['kept']}/{r['false_positives']['of']} ({r['false_positives']['rate']:.3f})"
             for r in results.values()]
    lines.append("| near misses kept (false positives) | " + " | ".join(cells) + " |")
    lines.append("| CPU ms per article | " + " | ".join(str(r["ms_per_article"]) for r in results.values()) + " |")
    lines.append("| misses by class | " + " | ".join(
        ", ".join(f"{k} {v}" for k, v in sorted(r["misses_by_class"].items())) or "none" for r in results.values())
        + " |")
    lines.append("| false positives by class | " + " | ".join(
        ", ".join(f"{k} {v}" for k, v in sorted(r["false_positives_by_class"].items())) or "none"
        for r in results.values()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("tuning", "held-out", "both"), default="both")
    parser.add_argument("--topic", type=Path, help="topic file for the new rule (default: the built-in one)")
    parser.add_argument("--compare", action="store_true", help="also the candidate readings (docs/topics.md)")
    parser.add_argument("--show-misses", action="store_true", help="print each miss and false positive")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = topic_set.load_rows()
    tuning, held_out = topic_set.split(rows)
    parts = {"tuning": tuning, "held-out": held_out}
    wanted = list(parts) if args.part == "both" else [args.part]
    candidates = rules(args.topic, args.compare)
    report = {"set": {"rows": len(rows), "tuning": len(tuning), "held_out": len(held_out),
                      "by_group_label": dict(Counter(f"{r['naming']}/{r['label']}" for r in rows))},
              "python": platform.python_version(), "parts": {}}
    for part in wanted:
        results = {name: evaluate(rule, parts[part]) for name, rule in candidates.items()}
        texts = [(title, body) for row in parts[part] for _, title, body in topic_set.readings(row)]
        for name, ms in timings(candidates, texts).items():
            results[name]["ms_per_article"] = ms
        report["parts"][part] = results
        print(table(results, f"{part} ({len(parts[part])} articles)"))
        if args.show_misses:
            for name, result in results.items():
                for miss in result["misses"]:
                    print(f"  [{name}] miss {miss['id']} {miss['class']} {miss['reading']} "
                          f"{miss['score']}: {miss['title']}")
                for row in result["false_positive_rows"]:
                    print(f"  [{name}] FP {row['id']} {row['class']} {row['reading']} {row['score']}: {row['title']}")
        print()
    second = load_topic(SECOND_TOPIC)
    report["second_topic"] = {}
    for part in wanted:
        # The set has no labels for the second topic; its us_china_talks near misses are that story.
        own = [r for r in parts[part] if r.get("near_miss_class") == "us_china_talks"]
        rest = [r for r in parts[part] if r.get("near_miss_class") != "us_china_talks"]
        found = sum(second.match(r["title"], r["body"]).on_topic for r in own)
        kept = sum(second.match(r["title"], r["body"]).on_topic for r in rest)
        report["second_topic"][part] = {"us_china_talks_found": found, "of": len(own), "others_kept": kept,
                                        "others": len(rest)}
        print(f"second topic ({second.name}), {part}: finds {found}/{len(own)} of the set's US–China talks, "
              f"keeps {kept}/{len(rest)} of the other articles")
    pages = crawl_pages()
    report["crawl_pages_cpu_ms_per_article"] = timings(candidates, pages)
    report["crawl_pages"] = {"articles": len(pages), "chars_mean": round(sum(len(b) for _, b in pages) / len(pages))}
    print(f"CPU ms per article on the crawl benchmark's {len(pages)} pages (People's Daily 1998, Traditional, "
          f"{report['crawl_pages']['chars_mean']} chars on average): "
          + ", ".join(f"{k} {v}" for k, v in report["crawl_pages_cpu_ms_per_article"].items()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
