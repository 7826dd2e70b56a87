"""Normalisation: exact NFKC, one script, site furniture dropped, clauses split where reprints agree."""

from __future__ import annotations

import random
import unicodedata

import pytest

from crawler import normalize as norm


@pytest.mark.parametrize("text", [
    "", "abc", "１２月３１日，ＡＢＣ！", "……", "ｶﾞｷﾞ", "e\u0301", "\u1100\u1161\u11a8", "㈠①", "ﬁ",
    "美俄\u3000会谈", "𠀀😀", "Å\u030a", "\uff9e\uff9f", "俄烏衝突、「戰略性失敗」",
])
def test_nfkc_equals_unicodedata(text):
    assert norm.nfkc(text) == unicodedata.normalize("NFKC", text)


def test_nfkc_equals_unicodedata_on_random_mixtures():
    rng = random.Random(11)
    pools = [(0x20, 0x3000), (0x3000, 0xD800), (0xE000, 0x10000), (0x300, 0x370), (0x1100, 0x1200),
             (0xFF00, 0xFFF0), (0x4E00, 0x9FFF)]
    for _ in range(3000):
        text = "".join(chr(rng.randrange(*rng.choice(pools))) for _ in range(rng.randrange(1, 10)))
        assert norm.nfkc(text) == unicodedata.normalize("NFKC", text), ascii(text)


def test_normalize_folds_width_script_and_punctuation():
    assert norm.normalize("１２月３１日，特朗普與普京通電話。") == "12月31日特朗普与普京通电话"
    assert norm.normalize("Hello, World!") == "helloworld"
    assert norm.to_simplified("俄羅斯") == "俄罗斯"
    assert norm.normalize("") == ""


def test_fold_undoes_taiwan_phrase_conversion():
    # s2twp turns 信息 into 資訊 and 软件 into 軟體; plain t2s would leave 资讯 and 软体.
    assert norm.squeeze(norm.fold("國家的資訊和軟體網路")) == "国家的信息和软件网络"
    assert norm.squeeze(norm.fold("国家的信息和软件网络")) == "国家的信息和软件网络"


def test_clauses_split_on_chinese_and_ascii_stops_but_not_decimals():
    folded = norm.fold("增长３．５％。第二句！第三句？第四句;第五句. 第六句\n第七句，第八句、第九句：第十句")
    assert norm.clauses(folded) == ["增长35", "第二句", "第三句", "第四句", "第五句", "第六句", "第七句",
                                    "第八句", "第九句", "第十句"]
    assert norm.clauses(norm.fold("增长3.5%")) == ["增长35"]
