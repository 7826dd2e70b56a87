"""crawler/foldcodes.py folds on arrays exactly as crawler/normalize.py's string functions do."""

from __future__ import annotations

import json
import random
from pathlib import Path

import opencc
import pytest

from crawler import foldcodes, simhash
from crawler import normalize as norm

CORPUS = Path(__file__).resolve().parent / "data" / "pd1998-dev.jsonl"  # see tests/data/README.md
DOCS = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines()[:60]]
TRICKY = [
    "", "\n", "。。。", "a", "3.5億美元，增長1.2%.下一句.", "1.2.3 ... x.y 5. 6 .7", "價格……上漲…", "ΑΣ ΣΑ Σ",
    "İstanbul 會談", "ＡＢＣ１２３，全角：標點！", "㈠㈡ ℡ ㎏ ﬁ ½ ①", "資訊軟體網路，PN接面與價效比", "\t空白\u3000間隔 ",
    "美俄_會談__下划线", "ﾊﾝｶｸ カタカナ", "e\u0301 combining", "😀 astral 𠀀", "ᄀ\u1161 jamo",
    ".5开头", "结尾3.", "3.", ".3", ".", "3.4", "……3.…",
    # Taiwan phrases (the bytes path) with decimal points and full stops: at the ends, next to a phrase,
    # a few (looked at one by one) and many (by arrays)
    ".5建立市場3.", "建立了3.5億美元的資料庫.下一句1.2.3", "工作.5建立", "資訊3．5軟體", "建立" + "1.5," * 12 + "x.y",
    # phrases with noise in them (詹姆斯·卡麥隆 -> 詹姆斯·卡梅隆): another noise character in its place is no
    # such phrase, though the two look alike once noise is marked
    "詹姆斯·卡麥隆執導，詹姆斯-卡麥隆、詹姆斯 卡麥隆", "林姆斯基-高沙可夫與林姆斯基·高沙可夫",
]


def reference(text: str) -> tuple[str, list[str]]:
    folded = norm.fold(text)
    return norm.squeeze(folded), norm.clauses(folded)


def texts() -> list[str]:
    s2twp, s2hk = opencc.OpenCC("s2twp"), opencc.OpenCC("s2hk")
    out = list(TRICKY) + DOCS[:30] + [s2twp.convert(d) for d in DOCS[30:45]] + [s2hk.convert(d) for d in DOCS[45:]]
    rng = random.Random(5)
    pool = "".join(DOCS[:3]) + "".join(TRICKY) + ".,。…0123456789"
    out += ["".join(rng.choice(pool) for _ in range(rng.randrange(1, 400))) for _ in range(200)]
    return out


@pytest.mark.parametrize("chunk", range(4))
def test_codes_fold_like_the_string_functions(chunk):
    cases = texts()[chunk::4]
    fast_taken = 0
    for text in cases:
        fast = foldcodes.squeezed_and_clauses(text)
        if fast is None:  # only for what the tables cannot do alone
            assert any(ord(c) > 0xFFFF or c in "ΣİΑ" or norm.nfkc_tables()[1][ord(c)] for c in text), text
            continue
        fast_taken += 1
        codes, squeezed, pieces = fast
        assert (squeezed, pieces) == reference(text), text[:60]
        assert codes.tolist() == [ord(c) for c in squeezed]
        assert simhash.fingerprint_codes(codes) == simhash.fingerprint(squeezed)
    assert fast_taken >= len(cases) * 0.8


def test_traditional_text_folds_to_the_simplified_original():
    """Character table plus Taiwan phrases: an s2twp copy of a paragraph folds back to it."""
    s2twp = opencc.OpenCC("s2twp")
    assert norm.fold("資訊軟體網路") == "信息软件网络"
    same = sum(norm.fold(s2twp.convert(p)) == norm.fold(p) for d in DOCS for p in d.split("\n") if p)
    total = sum(1 for d in DOCS for p in d.split("\n") if p)
    assert same / total >= 0.98  # OpenCC tw2sp on the Simplified side untouched: 94%
