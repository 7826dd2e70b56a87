"""The topic filter: the default US–Russia talks topic on real text in both scripts, and topic files."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import jsonschema
import pytest

from crawler.normalize import to_simplified
from crawler.topic import DEFAULT_TOPIC, load_topic, windows
from newswatch.errors import TopicFileError
from tests.replica import SEED, _t, corpus, on_topic_texts, seed_article, seed_recommended_titles


@pytest.fixture(scope="module")
def topic():
    return load_topic(None)


def _seed_recommended() -> list[tuple[str, str]]:
    """(title, summary) of each item of the seed page's 國際分類資訊推薦 block, as the real page shows them."""
    lines = [line.strip() for line in SEED.read_text(encoding="utf-8").splitlines() if line.strip()]
    block = lines[lines.index("國際分類資訊推薦") + 1:]
    out = []
    for title in seed_recommended_titles():
        at = block.index(title)
        out.append((title, block[at + 1] if at + 1 < len(block) else ""))
    return out


def test_seed_article_in_traditional_script_is_on_topic(topic):
    seed = seed_article()
    got = topic.match(seed.title, "\n".join([seed.lead, *seed.paragraphs]))
    assert got.on_topic
    assert got.name == "us_russia_talks"
    assert got.score >= topic.threshold
    assert {"普京", "特朗普", "里亚布科夫"} <= set(got.matched)  # reported folded to Simplified


def test_seed_article_in_simplified_script_scores_the_same(topic):
    seed = seed_article()
    traditional = topic.match(seed.title, "\n".join([seed.lead, *seed.paragraphs]))
    simplified = topic.match(to_simplified(seed.title),
                             to_simplified("\n".join([seed.lead, *seed.paragraphs])))
    assert simplified.on_topic
    assert simplified.score == traditional.score


@pytest.mark.parametrize("fixture", on_topic_texts(), ids=lambda f: f["key"])
def test_fixtures_on_topic_in_both_scripts(topic, fixture):
    text = "\n".join([fixture["lead"], *fixture["paragraphs"]])
    assert topic.match(fixture["title"], text).on_topic
    assert topic.match(_t(fixture["title"]), _t(text)).on_topic


@pytest.mark.parametrize("title,summary", _seed_recommended(), ids=lambda v: v[:8])
def test_recommended_block_items_are_off_topic(topic, title, summary):
    got = topic.match(title, summary)
    assert not got.on_topic
    assert got.score < topic.threshold


def test_peoples_daily_corpus_is_off_topic(topic):
    """600 documents of 1998 news, several naming 美国, 俄罗斯 and 会谈 somewhere in a long mixed text."""
    on = []
    for doc in corpus():
        lines = [line for line in doc["text"].split("\n") if line.strip()]
        if topic.match(lines[0], "\n".join(lines[1:])).on_topic:
            on.append(doc["id"])
    assert on == []


def test_sides_far_apart_do_not_count_but_together_they_do(topic):
    apart = "美国经济今年增长较快。\n" + "天气很好。\n" * 5 + "俄罗斯举办了冬季运动会。\n" + "双方举行了会谈。"
    assert topic.match("一周要闻", apart).score == 0
    together = "美国和俄罗斯代表团举行会谈。\n美方与俄方同意继续磋商。"
    got = topic.match("一周要闻", together)
    assert got.score > 0 and got.on_topic


def test_a_title_naming_all_sides_weighs_more_than_the_same_words_in_the_body(topic):
    in_title = topic.match("普京与特朗普通话", "今天天气很好。")
    in_body = topic.match("今日新闻", "普京与特朗普通话。")
    assert in_title.score == in_body.score * topic.title_weight
    assert in_title.on_topic and not in_body.on_topic


def test_windows_split_long_paragraphs_at_sentences():
    text = "短段落。\n" + "这是一个句子。" * 40
    got = windows(text, 50)
    assert got[0] == "短段落。"
    assert all(len(w) <= 50 for w in got[1:])
    assert "".join(got[1:]) == "这是一个句子。" * 40


def test_default_topic_file_is_the_builtin_one():
    assert load_topic(DEFAULT_TOPIC).terms == load_topic(None).terms


def test_own_topic_file_with_traditional_terms(tmp_path):
    path = tmp_path / "chips.toml"
    path.write_text('name = "chips"\nthreshold = 2.0\n[sides.chips]\n"晶片" = 1.0\n"半導體" = 1.0\n'
                    '[sides.trade]\n"出口管制" = 1.0\n', encoding="utf-8")
    topic = load_topic(path)
    assert topic.require == ("chips", "trade")
    got = topic.match("美国加强半导体出口管制", "")  # Simplified text, Traditional terms: folded alike
    assert got.on_topic and set(got.matched) == {"半导体", "出口管制"}
    assert not topic.match("半導體行業回暖", "").on_topic


def test_topic_file_that_does_not_parse_names_file_and_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\n[sides.a]\n"美国" = = 1\n', encoding="utf-8")
    with pytest.raises(TopicFileError) as info:
        load_topic(path)
    assert f"{path}:3:" in str(info.value)
    assert "NEWSWATCH_TOPICS" in str(info.value)


@pytest.mark.parametrize("text,line,words", [
    ('name = "x"\n', None, "sides"),
    ('threshold = 1\n[sides.a]\n"美国" = 1\n', None, "name"),
    ('name = 3\n[sides.a]\n"美国" = 1\n', 1, "name"),
    ('name = "x"\n[sides.a]\n"美国" = "heavy"\n', 3, "weight"),
    ('name = "x"\nrequire = ["a", "b"]\n[sides.a]\n"美国" = 1\n', 2, "require"),
    ('name = "x"\nthreshold = -1\n[sides.a]\n"美国" = 1\n', 2, "threshold"),
    ('name = "x"\n[sides.a]\n"美国" = 1\n[compound]\n"美俄" = ["a", "zz"]\n', 5, "compound"),
])
def test_topic_file_lacking_parts_names_the_problem(tmp_path, text, line, words):
    path = tmp_path / "topic.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TopicFileError) as info:
        load_topic(path)
    message = str(info.value)
    assert words in message
    assert (f"{path}:{line}:" in message) if line else (f"{path}:" in message)


def test_missing_topic_file(tmp_path):
    with pytest.raises(TopicFileError, match="cannot read"):
        load_topic(tmp_path / "nope.toml")


# --- today's format keeps its meaning ------------------------------------------------------------

V1_FILE = Path(__file__).resolve().parents[1] / "bench" / "data" / "topic" / "v1" / "us_russia_talks.toml"


def _frozen_v1_rule():
    """bench/topic_v1.py: crawler/topic.py as it was before aliases (the rule the old file was written for)."""
    spec = importlib.util.spec_from_file_location("frozen_topic_v1", V1_FILE.parents[3] / "topic_v1.py")
    module = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    return module.load_topic(V1_FILE)


def test_a_topic_file_in_todays_format_scores_exactly_as_before():
    """The default topic file as it was before aliases (no `aliases`, no `context`), read by today's code,
    gives every article the score, terms and decision the old code gave it."""
    old, new = _frozen_v1_rule(), load_topic(V1_FILE)
    assert new.context == 0 and not new.aliases
    seed = seed_article()
    texts = [(seed.title, "\n".join([seed.lead, *seed.paragraphs]))]
    texts += [(f["title"], "\n".join([f["lead"], *f["paragraphs"]])) for f in on_topic_texts()]
    texts += [(d["text"].split("\n")[0], d["text"]) for d in corpus()]
    texts += [(title, summary) for title, summary in _seed_recommended()]
    for title, text in texts:
        was, now = old.match(title, text), new.match(title, text)
        assert (now.score, now.matched, now.on_topic) == (was.score, was.matched, was.on_topic), title


# --- the classes of issue 13, real-style (written from 2025–2026 coverage) -----------------------

@pytest.mark.parametrize("variant", ["普京", "普丁", "普亭", "普廷", "蒲亭", "普欽"])
def test_every_transliteration_of_putin_folds_to_one_entity(topic, variant):
    got = topic.match(f"川普與{variant}通電話 同意立即啟動談判",
                      f"美國總統川普12日與俄羅斯總統{variant}通話近1個半小時，雙方同意立即展開結束戰爭的談判。")
    assert got.on_topic
    assert "普京" in got.entities and "特朗普" in got.entities
    assert to_simplified(variant) in got.matched  # the term as found, not the entity


@pytest.mark.parametrize("title,body,entities", [
    ("美特使魏科夫第4度訪俄 與普丁會談3小時",
     "美國特使魏科夫11日在聖彼得堡與俄羅斯總統普丁會談近3小時。\n克宮助理鄂夏柯夫說，雙方討論了結束烏克蘭戰爭的途徑。",
     {"威特科夫", "普京", "乌沙科夫"}),
    ("魯比奧晤拉夫羅夫 重申特朗普促解決俄烏戰爭",
     "美國國務卿魯比奧周三在紐約聯合國大會期間與俄羅斯外長拉夫羅夫會面。\n雙方就烏克蘭問題交換意見，會談約一小時。",
     {"鲁比奥", "拉夫罗夫", "特朗普"}),
    ("盧比歐、魏科夫抵利雅德 將與俄方高層會談",
     "美國國務卿盧比歐與中東特使魏科夫17日抵達沙烏地阿拉伯首都利雅德。\n他們將與俄羅斯外長拉夫羅夫及總統助理鄂夏柯夫會談。",
     {"鲁比奥", "威特科夫", "利雅得", "拉夫罗夫", "乌沙科夫"}),
])
def test_taiwan_and_hong_kong_naming(topic, title, body, entities):
    got = topic.match(title, body)
    assert got.on_topic, got
    assert entities <= set(got.entities)


def test_sides_spread_over_adjacent_paragraphs_count_but_far_apart_do_not(topic):
    us = "美国总统特朗普18日在白宫对记者说，他近期将与对方再次通话，讨论结束冲突的方案。"
    ru = "克里姆林宫发言人佩斯科夫当天表示，普京愿意与特朗普通话，具体时间仍在商定。"
    wire = topic.match("两国元首或再度通话", f"{us}\n{ru}")
    assert wire.on_topic
    assert us in wire.passages and ru in wire.passages
    filler = "\n".join(["当地气温持续走低，多地出现降雪，交通部门提醒司机注意安全。"] * 5)
    apart = topic.match("一周要闻", f"美国总统特朗普18日在白宫签署行政令。\n{filler}\n俄罗斯总统普京当天视察工厂。\n"
                                      f"{filler}\n双方举行了会谈。")
    assert not apart.on_topic


def test_multiparty_talks_without_the_plain_pair(topic):
    got = topic.match("阿布扎比三方会谈首日结束 各方称“有建设性”",
                      "由乌克兰、美国、俄罗斯三国代表组成的安全问题工作组23日在阿布扎比开始首轮会谈。\n"
                      "美方由特使威特科夫和库什纳率领，俄方代表团由军方情报部门负责人科斯秋科夫带队。\n"
                      "乌方代表乌梅罗夫说，各方将于次日继续会谈。")
    assert got.on_topic
    assert {"阿布扎比三方会谈", "阿布扎比", "威特科夫", "科斯秋科夫"} <= set(got.entities)


@pytest.mark.parametrize("title", ["特普會定8月15日阿拉斯加舉行", "阿拉斯加雙普會近3小時落幕 喊進展卻無協議",
                                   "克宮公布阿拉斯加峰會流程", "布達佩斯峰會料兩周內舉行"])
def test_event_names_carry_the_topic(topic, title):
    got = topic.match(title, "白宮證實，兩國元首將先舉行一對一會談，再與雙方代表團會面。\n克宮表示，會談細節仍在商討。")
    assert got.on_topic, got


def test_names_only(topic):
    got = topic.match("威特科夫深夜晤普京 佩斯科夫：已託他向特朗普傳話",
                      "特朗普的特使威特科夫周四晚抵達莫斯科，在克里姆林宮與普京閉門會談。\n"
                      "佩斯科夫周五說，普京已透過威特科夫向特朗普傳達額外訊息，並對「謹慎樂觀」。")
    assert got.on_topic
    assert not {"美国", "俄罗斯"} & set(got.entities)


@pytest.mark.parametrize("title,body", [
    ("中俄元首立春視像會晤 普京答允上半年訪華",
     "國家主席習近平周三以視像方式與俄羅斯總統普京會晤，兩國元首近年每逢春節前舉行會談。\n"
     "普京說，俄方對兩國關係充滿信心。\n克里姆林宮指，普京已接受邀請訪華。同日稍後，習近平亦與美國總統特朗普通電話。"),
    ("美伊阿曼首輪核談判 威特科夫與阿拉格齊短暫面談",
     "美國中東特使威特科夫與伊朗外長阿拉格齊周六在阿曼首都馬斯喀特舉行間接談判。\n"
     "白宮稱會談積極；俄羅斯外交部表示支持以外交途徑解決伊朗核問題。"),
    ("中美经贸高层会谈在日内瓦举行 取得实质性进展",
     "中美经贸高层会谈10日至11日在瑞士日内瓦举行，何立峰与美方牵头人贝森特会谈。\n双方同意建立经贸磋商机制。"),
    ("普京：美国若向乌提供“战斧”将引发升级",
     "俄罗斯总统普京2日表示，如果美国向乌克兰提供“战斧”导弹，将引发新一轮升级。"),
    ("美網首輪爆冷 梅德維夫五盤不敵邦齊", "俄羅斯名將梅德維夫在美國網球公開賽首輪五盤失利。"),
    ("与梅德韦杰夫隔空罵戰 特朗普下令调派两艘核潜艇", "美国总统特朗普1日说，他已下令两艘核潜艇前出部署，以回应俄罗斯前总统梅德韦杰夫的言论。"),
])
def test_near_misses_stay_off_topic(topic, title, body):
    assert not topic.match(title, body).on_topic
    assert not topic.match(to_simplified(title), to_simplified(body)).on_topic


def test_a_word_that_holds_a_term_is_not_the_term(topic):
    got = topic.match("一周要闻", "美国对俄罗斯石油买家加征关税，印度将会面临更大压力。")
    assert "会面" not in got.matched


def test_the_topic_field_explains_itself_and_fits_the_schema(topic):
    schema = json.loads((Path(__file__).resolve().parents[1] / "newswatch/schema/item.schema.json").read_text())
    long_paragraph = "美国总统特朗普与俄罗斯总统普京通电话，" + "双方讨论了结束冲突的各种方案和后续的会谈安排，" * 20
    got = topic.match("美俄元首通话", long_paragraph)
    field = got.explain()
    assert set(field) == {"name", "score", "matched", "entities", "passages"}
    assert field["passages"] and all(len(p) <= 200 for p in field["passages"])
    jsonschema.validate(field, schema["properties"]["topic"])


def test_a_headline_naming_another_story_halves_the_score_but_one_naming_both_sides_does_not(topic):
    body = ("白宫表示，特使威特科夫与普京在莫斯科会谈近五小时，双方同意继续磋商。\n"
            "克里姆林宫助理乌沙科夫说，会谈富有成效，普京与特朗普可能再次通话。")
    other = topic.match("中俄元首视频会晤 普京答允访华", body)
    sanctions = topic.match("美国暂缓对俄新制裁 为和谈留出空间", body)
    plain = topic.match("威特科夫莫斯科会晤普京", body)
    unpenalised = dataclasses.replace(topic, against_factor=1.0).match("中俄元首视频会晤 普京答允访华", body)
    assert unpenalised.on_topic and other.score == round(unpenalised.score * 0.5, 3)
    assert not other.on_topic and other.passages[0] == "中俄元首视频会晤 普京答允访华"
    assert sanctions.on_topic and plain.on_topic
