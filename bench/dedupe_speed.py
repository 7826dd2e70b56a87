"""Evidence speed per core, and `newswatch dedupe` as a whole process, side by side with the PyPI `simhash`.

1. per document, CPU time of one core (`time.process_time`, so other work on the machine does not count;
   the two take turns 25 documents at a time, best of 3 rounds):
   newswatch's full evidence (`crawler.dedupe.evidence`: normalise, fingerprint, clauses — what the
   pipeline computes) vs `simhash.Simhash(text)`, on the corpus documents (Simplified) and on the same
   converted to Traditional with OpenCC s2twp;
2. whole processes on --pairs pairs (JSON lines {a, b}; Simplified, and both texts converted to
   Traditional): `newswatch dedupe FILE` vs a script doing the same with PyPI `simhash` (distance <= 3),
   taking turns, --repeat runs each; wall time and CPU time (user + system of the child), medians.
   Start-up counts: both are fresh interpreters.

    python bench/dedupe_speed.py [--pairs N] [--repeat N]
    python bench/dedupe_speed.py --profile     # where the evidence's time goes, step by step (nothing written)

Writes bench/results/dedupe_speed.json. The index at scale: bench/dedupe_index.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import opencc

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import make_dedupe_set  # noqa: E402
from simhash import Simhash  # noqa: E402  (PyPI package)

from crawler import dedupe, foldcodes, simhash  # noqa: E402
from crawler.dedupe import evidence  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "dedupe_speed.json"
ANCHOR_SCRIPT = """
import json, sys
from simhash import Simhash
for line in open(sys.argv[1], encoding="utf-8"):
    pair = json.loads(line)
    d = Simhash(pair["a"]).distance(Simhash(pair["b"]))
    print(json.dumps({"duplicate": d <= 3, "distance": d}))
"""


def side_by_side(texts: list[str], block: int = 25, rounds: int = 3) -> tuple[float, float]:
    """CPU µs per document of newswatch's evidence and of PyPI's Simhash, taking turns a block of documents
    at a time, so that both meet the same load on a shared machine; the best of `rounds` for each."""
    best_ours = best_theirs = float("inf")
    for _ in range(rounds):
        ours = theirs = 0.0
        for start in range(0, len(texts), block):
            part = texts[start:start + block]
            t = time.process_time()
            for text in part:
                evidence(text)
            ours += time.process_time() - t
            t = time.process_time()
            for text in part:
                Simhash(text)
            theirs += time.process_time() - t
        best_ours, best_theirs = min(best_ours, ours), min(best_theirs, theirs)
    return best_ours / len(texts) * 1e6, best_theirs / len(texts) * 1e6


def throughput(docs: list[str], traditional: list[str]) -> dict:
    started = time.process_time()
    evidence(docs[0])  # the tables are built on first use
    tables_s = time.process_time() - started
    out = {"tables_built_on_first_use_cpu_s": round(tables_s, 3)}
    for name, texts in (("simplified", docs), ("traditional", traditional)):
        ours, theirs = side_by_side(texts)
        out[name] = {"newswatch_full_evidence_us": round(ours, 1), "pypi_simhash_us": round(theirs, 1),
                     "ratio": round(theirs / ours, 1)}
        print(f"{name:<12} CPU per doc: newswatch full evidence {ours:7.1f} us; PyPI Simhash(text) "
              f"{theirs:7.1f} us -> {theirs / ours:.1f}x")
    return out


def profile(docs: list[str], traditional: list[str]) -> None:
    """CPU µs per document of each step of `evidence`, each step timed alone over all documents (inputs
    made beforehand; best of 3), so the steps do not add up exactly to the whole; PyPI's per document too."""
    evidence(docs[0])
    first, _, _, marks = foldcodes.tables()
    _, starts, replace, text_pairs = foldcodes.phrase_lookup()

    def codes_marks(text):  # (the texts with a character the tables do not fold alone are left out below)
        codes = np.frombuffer(foldcodes._ENCODE16(text, "surrogatepass")[0], dtype="<u2")
        marked = marks.take(codes)
        return codes, marked, marked.max() == foldcodes.FLAG

    def phrase_starts(codes):
        halves = text_pairs.take(codes).view(np.uint16)
        return starts.take(np.add(halves[0:-2:2], halves[3::2])).nonzero()[0]

    def points_split(marked):
        if "." in marked:
            marked = foldcodes._DECIMAL.sub(foldcodes._DROP, marked).replace(".", foldcodes._END)
        return marked.replace(foldcodes._DROP, "").split(foldcodes._END)

    def steps(texts: list[str]) -> dict[str, float]:
        out: dict[str, float] = {}

        def step(name, f, inputs):
            best = float("inf")
            for _ in range(3):
                t = time.process_time()
                results = [f(x) for x in inputs]
                best = min(best, time.process_time() - t)
            out[name] = best / len(inputs) * 1e6
            return results

        step("whole evidence", evidence, texts)
        step("PyPI Simhash(text), for comparison", Simhash, texts[:150])
        parts = step("fold, phrases, marks, clauses split (foldcodes.clause_pieces)", foldcodes.clause_pieces, texts)
        cm = step("  to UTF-16; marks (NFKC, t2s, lower case, noise, ends: one lookup), flag check", codes_marks, texts)
        codes = [c for c, _, flag in cm if not flag]
        places = step("  Taiwan phrases: where they may start (16-bit pair lookup)", phrase_starts, codes)
        marked = step("  marks as a string", lambda m: foldcodes._DECODE16(m)[0], [m for _, m, flag in cm if not flag])
        step("  Taiwan phrases: replaced", lambda x: foldcodes._replace_phrases(x[0], x[1].tolist(), replace, x[2], first),
             list(zip(marked, places, codes, strict=True)))
        step("  decimal points, noise dropped, clauses split", points_split, marked)
        squeezed = step("squeezed text (join)", "".join, parts)
        step("clause hashes (BLAKE2b) and the sample", lambda p: dedupe._sampled_clauses(p, sum(map(len, p))), parts)
        step("SimHash: fingerprint", simhash.fingerprint, squeezed)
        step("  shingle hashes", simhash.shingle_hashes, squeezed)
        return out

    simplified, trad = steps(docs), steps(traditional)
    print(f"{'CPU us per document (alone, best of 3)':<66} {'Simplified':>10} {'Traditional':>11}")
    for name in simplified:
        print(f"{name:<66} {simplified[name]:>10.1f} {trad[name]:>11.1f}")
    clauses = sum(len([p for p in foldcodes.clause_pieces(d) if len(p) >= 8]) for d in docs)
    print(f"(clauses hashed per Simplified document: {clauses / len(docs):.0f})")


def run_child(argv: list[str]) -> tuple[float, float, bytes]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, check=True, cwd=ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done.stdout


def processes(pairs: list[dict], repeat: int, work: Path) -> dict:
    s2twp = opencc.OpenCC("s2twp")
    sets = {"simplified": pairs,
            "traditional": [{"a": s2twp.convert(p["a"]), "b": s2twp.convert(p["b"])} for p in pairs]}
    anchor = work / "pypi_simhash_dedupe.py"
    anchor.write_text(ANCHOR_SCRIPT, encoding="utf-8")
    env_python = sys.executable
    out = {}
    for name, rows in sets.items():
        path = work / f"pairs-{name}.jsonl"
        path.write_text("".join(json.dumps({"a": p["a"], "b": p["b"]}, ensure_ascii=False) + "\n" for p in rows),
                        encoding="utf-8")
        runs: dict[str, list[tuple[float, float]]] = {"newswatch": [], "pypi": []}
        for _ in range(repeat):
            wall, cpu, stdout = run_child([env_python, "-m", "newswatch.cli", "dedupe", str(path)])
            assert stdout.count(b"\n") == len(rows)
            runs["newswatch"].append((wall, cpu))
            wall, cpu, stdout = run_child([env_python, str(anchor), str(path)])
            assert stdout.count(b"\n") == len(rows)
            runs["pypi"].append((wall, cpu))
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
        out[name] = {"pairs": len(rows), "newswatch_wall_s": round(med["newswatch"][0], 2),
                     "newswatch_cpu_s": round(med["newswatch"][1], 2), "pypi_wall_s": round(med["pypi"][0], 2),
                     "pypi_cpu_s": round(med["pypi"][1], 2), "ratio_wall": round(med["pypi"][0] / med["newswatch"][0], 1),
                     "ratio_cpu": round(med["pypi"][1] / med["newswatch"][1], 1)}
        r = out[name]
        print(f"{name:<12} whole process, {len(rows)} pairs: newswatch dedupe {r['newswatch_wall_s']} s wall / "
              f"{r['newswatch_cpu_s']} s CPU; PyPI simhash script {r['pypi_wall_s']} s / {r['pypi_cpu_s']} s "
              f"-> {r['ratio_wall']}x wall, {r['ratio_cpu']}x CPU")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-processes", action="store_true")
    parser.add_argument("--profile", action="store_true", help="only print where the evidence's time goes")
    args = parser.parse_args(argv)
    docs = [json.loads(line)["text"] for line in make_dedupe_set.CORPUS.read_text(encoding="utf-8").splitlines()]
    s2twp = opencc.OpenCC("s2twp")
    traditional = [s2twp.convert(d) for d in docs]
    if args.profile:
        profile(docs, traditional)
        return 0
    results = {"command": "python bench/dedupe_speed.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "load_average_at_start": os.getloadavg(), "documents": len(docs),
               "throughput": throughput(docs, traditional)}
    if not args.skip_processes:
        pairs = random.Random(14).sample(make_dedupe_set.build(600), args.pairs)
        with tempfile.TemporaryDirectory() as work:
            results["processes"] = processes(pairs, args.repeat, Path(work))
    results["load_average_at_end"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
