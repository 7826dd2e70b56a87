"""The labelled topic set (bench/data/topic/*.jsonl) and its fixed split into a tuning and a held-out part.

The split is deterministic and stratified: within each (naming group, label) stratum the rows are taken
in id order and every fifth one (the 3rd, 8th, 13th, ...) is held out. It was applied once, to the set
as it stood when tuning began, and frozen in split.json, so that later curation (rows dropped or added)
moves no row between the parts: a row split.json does not know is split by the same rule among the
other unknown rows. `python bench/topic_set.py --freeze` writes split.json afresh (only for a new set).

Mainland and Singapore rows are written in Simplified script; the site serves everything in Traditional
(OpenCC s2t), so `served` gives such a row as the site would show it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

SET_DIR = Path(__file__).resolve().parent / "data" / "topic"
SPLIT = SET_DIR / "split.json"
SIMPLIFIED_GROUPS = ("mainland", "singapore")
HELD_OUT_EVERY, HELD_OUT_AT = 5, 2


def load_rows(directory: Path = SET_DIR) -> list[dict]:
    rows = []
    for path in sorted(directory.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                row = json.loads(line)
                row["_file"] = f"{path.name}:{number}"
                rows.append(row)
    ids = [r["id"] for r in rows]
    if len(ids) != len(set(ids)):
        raise SystemExit(f"duplicate ids in {directory}: {sorted({i for i in ids if ids.count(i) > 1})}")
    return rows


def split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(tuning, held_out), as frozen in split.json."""
    frozen = json.loads(SPLIT.read_text(encoding="utf-8")) if SPLIT.exists() else {"tuning": [], "held_out": []}
    known = {i: "held_out" for i in frozen["held_out"]} | {i: "tuning" for i in frozen["tuning"]}
    tuning = [r for r in rows if known.get(r["id"]) == "tuning"]
    held_out = [r for r in rows if known.get(r["id"]) == "held_out"]
    new_tuning, new_held_out = stratified([r for r in rows if r["id"] not in known])
    return tuning + new_tuning, held_out + new_held_out


def stratified(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Every fifth row of each (naming, label) stratum, in id order, held out."""
    strata: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        strata[(row["naming"], row["label"])].append(row)
    tuning, held_out = [], []
    for key in sorted(strata):
        for index, row in enumerate(sorted(strata[key], key=lambda r: r["id"])):
            (held_out if index % HELD_OUT_EVERY == HELD_OUT_AT else tuning).append(row)
    return tuning, held_out


_s2t = None


def served(text: str) -> str:
    """Simplified text as the site serves it: OpenCC s2t."""
    global _s2t
    if _s2t is None:
        import opencc

        _s2t = opencc.OpenCC("s2t")
    return _s2t.convert(text)


def readings(row: dict) -> list[tuple[str, str, str]]:
    """(reading, title, body) for each way the row is judged: as written, and for Simplified groups also
    as served in Traditional."""
    out = [("written", row["title"], row["body"])]
    if row["naming"] in SIMPLIFIED_GROUPS:
        out.append(("served", served(row["title"]), served(row["body"])))
    return out


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--freeze"]:
        raise SystemExit("usage: python bench/topic_set.py --freeze   (rewrites split.json from the set as it is)")
    tuning, held_out = stratified(load_rows())
    SPLIT.write_text(json.dumps({"tuning": sorted(r["id"] for r in tuning),
                                 "held_out": sorted(r["id"] for r in held_out)}, indent=0) + "\n", encoding="utf-8")
    print(f"{SPLIT}: {len(tuning)} tuning, {len(held_out)} held out")
