"""`newswatch topic` through the command line, the second example topic, and alias files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.topic import load_topic
from newswatch.errors import TopicFileError

ROOT = Path(__file__).resolve().parents[1]
TRADE = ROOT / "crawler" / "topics" / "china_us_trade_talks.toml"

ON = {"title": "川普普丁通話近1個半小時 同意立即啟動談判",
      "body": "美國總統川普12日與俄羅斯總統普丁通電話。\n白宮說，雙方同意立即展開談判，魏科夫將赴莫斯科。"}
OFF = {"title": "美網首輪爆冷 梅德維夫五盤不敵邦齊", "body": "俄羅斯名將梅德維夫在美國網球公開賽首輪失利。"}
TRADE_ON = {"title": "中美日內瓦經貿會談達共識 互降關稅115%",
            "body": "國務院副總理何立峰與美國財長貝森特、貿易代表葛里爾在日內瓦會談。\n雙方同意90日內大幅降低關稅。"}


def newswatch(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    return subprocess.run([sys.executable, "-m", "newswatch.cli", *args], input=stdin, capture_output=True,
                          text=True, encoding="utf-8", env={**clean, **env}, cwd=ROOT, timeout=120)


def lines(*objects) -> str:
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects)


def test_one_json_line_out_per_line_in_from_stdin():
    done = newswatch("topic", "-", stdin=lines(ON, OFF))
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["on_topic"] for o in out] == [True, False]
    assert set(out[0]) == {"on_topic", "score", "matched", "entities", "passages"}
    assert {"川普", "普丁"} <= set(out[0]["matched"]) and {"特朗普", "普京"} <= set(out[0]["entities"])
    assert out[0]["passages"][0] == ON["title"]


def test_reads_a_file_and_uses_the_topic_the_crawl_uses(tmp_path):
    articles = tmp_path / "articles.jsonl"
    articles.write_text(lines(ON, TRADE_ON), encoding="utf-8")
    default = [json.loads(x)["on_topic"] for x in newswatch("topic", str(articles)).stdout.splitlines()]
    configured = newswatch("topic", str(articles), NEWSWATCH_TOPICS=str(TRADE))
    flag = newswatch("topic", "--topic", str(TRADE), str(articles))
    assert default == [True, False]
    assert [json.loads(x)["on_topic"] for x in configured.stdout.splitlines()] == [False, True]
    assert flag.stdout == configured.stdout


@pytest.mark.parametrize("bad", ['{"title": "x", "body": 3}', "not json", '["a", "b"]', '{"title": 3, "body": "x"}'])
def test_a_malformed_line_is_named_by_number_exit_2(bad):
    done = newswatch("topic", "-", stdin=lines(ON) + "\n" + bad + "\n" + lines(OFF))
    assert done.returncode == 2
    assert "line 3" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stdout.splitlines()) == 1  # the lines before it were answered


def test_a_missing_file_or_topic_file_exit_2(tmp_path):
    missing = newswatch("topic", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr
    bad_topic = newswatch("topic", "--topic", str(tmp_path / "nope.toml"), "-", stdin=lines(ON))
    assert bad_topic.returncode == 2 and "--topic" in bad_topic.stderr and "Traceback" not in bad_topic.stderr


# --- the second example topic: a topic is data ---------------------------------------------------

@pytest.fixture(scope="module")
def trade():
    return load_topic(TRADE)


@pytest.mark.parametrize("title,body", [
    (TRADE_ON["title"], TRADE_ON["body"]),
    ("中美经贸磋商机制首次会议在伦敦举行", "中美经贸磋商机制首次会议9日在伦敦开幕。\n何立峰与美方贝森特、卢特尼克、格里尔进行会谈，讨论出口管制与稀土问题。"),
    ("釜山習特會歷時約100分鐘", "國家主席習近平與美國總統特朗普在釜山會晤。\n雙方就關稅、芬太尼及稀土出口管制達成共識，中方將恢復採購美國大豆。"),
])
def test_trade_topic_finds_china_us_trade_talks(trade, title, body):
    got = trade.match(title, body)
    assert got.on_topic, got
    assert got.name == "china_us_trade_talks"


@pytest.mark.parametrize("article", [ON, OFF, {
    "title": "習近平訪俄 克里姆林宮會普丁簽聯合聲明", "body": "國家主席習近平與俄羅斯總統普丁在克里姆林宮會談，雙方簽署聯合聲明。"}])
def test_trade_topic_leaves_other_stories(trade, article):
    assert not trade.match(article["title"], article["body"]).on_topic


# --- alias files ---------------------------------------------------------------------------------

def _topic_with_aliases(tmp_path, aliases: str) -> Path:
    (tmp_path / "names.toml").write_text(aliases, encoding="utf-8")
    path = tmp_path / "topic.toml"
    path.write_text('name = "t"\nthreshold = 1.0\naliases = ["names.toml"]\n[sides.us]\n"特朗普" = 1.0\n'
                    '[sides.talks]\n"会谈" = 1.0\n', encoding="utf-8")
    return path


def test_a_users_variant_in_an_alias_file_counts_as_the_entity(tmp_path):
    path = _topic_with_aliases(tmp_path, '[people]\n"特朗普" = ["川普", "侯世普"]\n')
    got = load_topic(path).match("侯世普會談", "")
    assert got.on_topic and got.matched == ["会谈", "侯世普"] and got.entities == ["会谈", "特朗普"]


@pytest.mark.parametrize("aliases,line,words", [
    ('[a]\n"特朗普" = ["川普"]\n"拜登" = ["川普"]\n', 3, "both"),
    ('[a]\n"特朗普" = "川普"\n', 2, "must list"),
    ('[a]\n"特朗普" = [""]\n', 2, "empty"),
    ('[a\n', 1, "TOML"),
])
def test_a_broken_alias_file_names_file_and_line(tmp_path, aliases, line, words):
    path = _topic_with_aliases(tmp_path, aliases)
    with pytest.raises(TopicFileError) as info:
        load_topic(path)
    message = str(info.value)
    assert words in message and "names.toml" in message
    if line:
        assert f"names.toml:{line}:" in message


def test_a_topic_naming_a_missing_alias_file(tmp_path):
    path = tmp_path / "topic.toml"
    path.write_text('name = "t"\naliases = ["gone.toml"]\n[sides.a]\n"美国" = 1\n', encoding="utf-8")
    with pytest.raises(TopicFileError, match="gone.toml: cannot read"):
        load_topic(path)
