"""The labelled topic set (bench/data/topic/*.jsonl) and its fixed split into a tuning and a held-out part.

The split is deterministic and stratified: within each (naming group, label) stratum the rows are taken
in id order and every fifth one (the 3rd, 8th, 13th, ...) is held out. Ids are numbered in the order each
writer wrote them, so rows added at the end of a batch do not move earlier rows between the parts.

Mainland and Singapore rows are written in Simplified script; the site serves everything in Traditional
(OpenCC s2t), so `served` gives such a row as the site would show it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

SET_DIR = Path(__file__).resolve().parent / "data" / "topic"
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
    """(tuning, held_out)."""
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
