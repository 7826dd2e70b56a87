"""Site furniture lives in the site profile (crawler/sites/daydaynews.toml): caption lines, the site's name
after a title, the recommended block; its patterns are RE2, linear in the line whatever they say."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.sites import load_profile

PROFILE = load_profile()


def test_site_furniture_is_dropped():
    text = "\n".join([
        "俄副外長放風,美國要主動邁出第一步 - 天天要聞",
        "自特朗普拿下大選後,曾不斷放出消息。",
        "俄副外長放風,美國要主動邁出第一步 - 天天要聞(俄副外長里亞布科夫)",
        "5日當天,俄副外長里亞布科夫在回答媒體提問時提到。",
        "國際分類資訊推薦",
        "中國家庭60%的問題 - 天天要聞",
        "別的文章。",
    ])
    assert PROFILE.strip_furniture(text).split("\n") == [
        "俄副外長放風,美國要主動邁出第一步",
        "自特朗普拿下大選後,曾不斷放出消息。",
        "5日當天,俄副外長里亞布科夫在回答媒體提問時提到。",
    ]


def test_text_without_furniture_is_unchanged():
    text = "第一段。\n第二段 - 其他网站的标题\n第三段"
    assert PROFILE.strip_furniture(text) == text


# --- issue 12 point 1: furniture checks run in linear time on hostile lines ---------------------------

_OLD_CAPTION = re.compile(r"^.*\s[-–—]\s*天天要[聞闻]\s*[(（].*[)）]\s*$")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["天天要聞", "天天要闻", " ", "-", "—", "|", "_", "(", "（", ")", "）",
                                 "美俄", "x", "\t"]), max_size=14).map("".join))
def test_the_profile_caption_pattern_agrees_with_the_backtracking_one_it_replaced(line):
    # (RE2's \s is ASCII; the extractor has already folded other spaces into " ")
    assert bool(PROFILE.caption_re.match(line)) == bool(_OLD_CAPTION.match(line))


@pytest.mark.timeout(60)
def test_issue12_point1_crafted_caption_line_is_linear():
    """≈1.5M characters of `美俄會談 - 天天要聞(`: the old caption pattern needed minutes (quadratic)."""
    line = "美俄會談 - 天天要聞(" * 100_000
    for text in (line, line + ")", "標題" + " \t" * 700_000 + "天天要聞"):
        PROFILE.strip_furniture(text)
    assert PROFILE.strip_furniture(line + ")") == "" and PROFILE.strip_furniture(line) == "美俄會談"
