"""The topic filter: the default US–Russia talks topic on real text in both scripts, and topic files."""

from __future__ import annotations

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
