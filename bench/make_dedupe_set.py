"""Build the labelled near-duplicate evaluation set from the People's Daily corpus and the seed article in tests/data.

The set is generated at run time from the real text in `tests/data/` (People's Daily 1998 documents and the
seed article; provenance in tests/data/README.md) and written outside the repository. Every pair is {"kind", "label": "reprint" | "distinct", "a": earlier, "b": later}.

    python bench/make_dedupe_set.py [--out PATH] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
from pathlib import Path

import opencc

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
CORPUS = DATA / "pd1998-dev.jsonl"
SEED = DATA / "seed_3930612.txt"
DEFAULT_OUT = Path(tempfile.gettempdir()) / "newswatch-dedupe-set.jsonl"

# Other sites' furniture, as aggregators wrap a reprint (invented here, in their usual shapes).
HEADERS = [
    "来源：环球资讯网 {d}\n点击上方蓝字关注我们，每天获取最新国际新闻",
    "【新闻快报】\n本文来自：今日头条新闻频道 {d} 作者：编辑部",
    "转自：人民网 {d}\n原标题见文末",
    "◆ 看天下 · 国际观察 ◆\n发布时间：{d}",
]
FOOTERS = [
    "免责声明：本文转载自网络，版权归原作者所有，如有侵权请联系我们删除。\n责任编辑：王小明",
    "（完）\n更多精彩内容，请下载客户端。\n分享到：微信 微博 QQ空间",
    "声明：转载此文是出于传递更多信息之目的。若有来源标注错误或侵犯了您的合法权益，请作者持权属证明与本网联系，我们将及时更正、删除，谢谢。",
    "本文仅代表作者观点，不代表本站立场。\n关注我们，获取更多资讯。",
]
TITLES = ["重磅！{t}", "{t}，到底发生了什么？", "刚刚，{t}", "突发：{t}"]
BYLINES = ["新华社北京1月{n}日电（记者张建华）", "本报讯（记者李卫东 通讯员王芳）", "人民日报记者 刘明 报道："]

_FULL_TO_ASCII = {**{0xFF01 + i: chr(0x21 + i) for i in range(94)}, 0x3002: ".", 0x3001: ",",
                  0x201C: '"', 0x201D: '"', 0x3000: " "}

_converters: dict[str, opencc.OpenCC] = {}


def convert(text: str, config: str) -> str:
    if config not in _converters:
        _converters[config] = opencc.OpenCC(config)
    return _converters[config].convert(text)


def paragraphs(text: str) -> list[str]:
    return [p for p in text.split("\n") if p.strip()]


# --- reprint transformations (each takes text and a random generator) ---------------------------------

def boilerplate(text: str, rng: random.Random) -> str:
    date = f"2025-0{rng.randint(1, 9)}-{rng.randint(10, 28)} {rng.randint(10, 23)}:{rng.randint(10, 59)}"
    return rng.choice(HEADERS).format(d=date) + "\n" + text + "\n" + rng.choice(FOOTERS)


def traditional_tw(text: str, rng: random.Random) -> str:
    return convert(text, "s2twp")


def traditional_hk(text: str, rng: random.Random) -> str:
    return convert(text, "s2hk")


def drop_paragraph(text: str, rng: random.Random) -> str:
    ps = paragraphs(text)
    if len(ps) < 3:
        return text
    del ps[rng.randrange(1, len(ps))]
    return "\n".join(ps)


def edit_one_percent(text: str, rng: random.Random) -> str:
    chars = list(text)
    positions = [i for i, c in enumerate(chars) if c != "\n"]
    pool = [c for c in chars if "\u4e00" <= c <= "\u9fff"] or ["的"]
    for _ in range(max(1, round(len(positions) / 100))):
        i = rng.choice(positions)
        op = rng.random()
        if op < 0.5:
            chars[i] = rng.choice(pool)
        elif op < 0.75:
            chars[i] = ""
        else:
            chars[i] = chars[i] + rng.choice(pool)
    return "".join(chars)


def ascii_punctuation(text: str, rng: random.Random) -> str:
    return text.translate(_FULL_TO_ASCII)


def new_title(text: str, rng: random.Random) -> str:
    ps = paragraphs(text)
    title = ps[0][:20]
    return "\n".join([rng.choice(TITLES).format(t=title)] + ps[1:])


def merge_split(text: str, rng: random.Random) -> str:
    out: list[str] = []
    for p in paragraphs(text):
        r = rng.random()
        if out and r < 0.3:
            out[-1] += p  # merged into the previous paragraph
        elif r < 0.6 and "。" in p[:-1]:
            cut = p.index("。") + 1  # split after the first sentence
            out += [p[:cut], p[cut:]]
        else:
            out.append(p)
    return "\n".join(out)


def lead_only(text: str, rng: random.Random) -> str:
    """The first 60-70% of the article, cut at a sentence end as aggregators do."""
    target = len(text) * rng.uniform(0.6, 0.7)
    ends = [m.end() for m in re.finditer(r"[。！？\n]", text)]
    cut = min(ends, key=lambda e: abs(e - target)) if ends else int(target)
    return text[:cut].rstrip("\n")


REPRINT_KINDS = {
    "boilerplate": [boilerplate],
    "traditional-s2twp": [traditional_tw],
    "traditional-s2hk": [traditional_hk],
    "paragraph-dropped": [drop_paragraph],
    "edited-1pct": [edit_one_percent],
    "ascii-punctuation": [ascii_punctuation],
    "new-title": [new_title],
    "merged-split": [merge_split],
    "lead-only": [lead_only],
    "boilerplate+s2twp": [boilerplate, traditional_tw],
    "dropped+new-title+boilerplate": [drop_paragraph, new_title, boilerplate],
    "edited+ascii": [edit_one_percent, ascii_punctuation],
    "s2hk+merged-split+edited": [merge_split, edit_one_percent, traditional_hk],
    "lead-only+s2twp": [lead_only, traditional_tw],
    "lead-only+boilerplate+new-title": [lead_only, new_title, boilerplate],
    "lead-only+edited": [lead_only, edit_one_percent],
}


# --- the seed article ---------------------------------------------------------------------------------

def seed_parts() -> tuple[str, str, list[tuple[str, str]]]:
    """(the page as a text extractor saw it, the article as our extractor keeps it, recommended items)."""
    raw = SEED.read_text(encoding="utf-8")
    lines = [line.strip() for line in raw.split("\n") if line.strip()]
    head = lines.index("國際分類資訊推薦")
    article = [line for line in lines[:head]
               if " - 天天要聞(" not in line and not re.match(r"^\d{4}年\d{2}月\d{2}日", line)]
    recommended: list[tuple[str, str]] = []
    rest = lines[head + 1:]
    for i, line in enumerate(rest):
        if line.endswith(" - 天天要聞") and i + 2 < len(rest):
            recommended.append((rest[i + 1], rest[i + 2]))
    return raw, "\n".join(article), recommended


def build(limit: int = 600, seed: int = 1998) -> list[dict]:
    docs = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines()][:limit]
    rng = random.Random(seed)
    pairs: list[dict] = []

    def add(kind: str, label: str, a: str, b: str) -> None:
        pairs.append({"kind": kind, "label": label, "a": a, "b": b})

    for kind, steps in REPRINT_KINDS.items():
        for doc in docs:
            text = doc
            for step in steps:
                text = step(text, rng)
            add(kind, "reprint", doc, text)
    raw, article, recommended = seed_parts()
    simplified = convert(article, "t2s")
    add("seed-simplified", "reprint", article, simplified)
    add("seed-simplified-vs-raw-page", "reprint", raw, simplified)
    add("seed-simplified-boilerplate", "reprint", article, boilerplate(simplified, rng))
    add("seed-lead-only-simplified", "reprint", article, lead_only(simplified, rng))

    n = len(docs)
    for i, doc in enumerate(docs):
        add("neighbours", "distinct", doc, docs[(i + 1) % n])
        other = paragraphs(docs[(i + 7) % n])
        quoted = max(paragraphs(doc)[1:] or paragraphs(doc), key=len)  # the longest paragraph: hardest
        at = rng.randrange(1, len(other))
        add("quotes-one-paragraph", "distinct", doc, "\n".join(other[:at] + [quoted] + other[at:]))
        header, footer = HEADERS[i % len(HEADERS)].format(d="2025-02-19 08:30"), FOOTERS[i % len(FOOTERS)]
        add("same-boilerplate", "distinct", f"{header}\n{doc}\n{footer}", f"{header}\n{docs[(i + 1) % n]}\n{footer}")
        byline = BYLINES[i % len(BYLINES)].format(n=i % 28 + 1)
        first, second = (paragraphs(d)[-1][: rng.randint(50, 140)] for d in (doc, docs[(i + 3) % n]))
        add("short-shared-byline", "distinct", byline + first, byline + second)
    for title, summary in recommended:
        add("seed-vs-recommended-item", "distinct", article, f"{title}\n{summary}")
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--limit", type=int, default=600, help="corpus documents to use")
    args = parser.parse_args(argv)
    if not CORPUS.exists():
        print(f"corpus not found: {CORPUS}", file=sys.stderr)
        return 2
    pairs = build(args.limit)
    with args.out.open("w", encoding="utf-8") as fh:
        for pair in pairs:
            fh.write(json.dumps(pair, ensure_ascii=False) + "\n")
    print(f"{len(pairs)} pairs -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
