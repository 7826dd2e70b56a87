"""The reprint index's periods: lookups read a fixed number of keys, data expires, and an upgrade from the
per-day layout of earlier versions keeps finding the reprints of articles indexed before it (Redis 7, 6.2)."""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from crawler import dedupe
from crawler.dedupe import DAY, DedupeIndex, Evidence, decide, evidence, first_clauses, longest_first
from newswatch import defaults
from tests import test_dedupe as base
from tests.test_dedupe import CORPUS, FOLLOW_UP, NOW, REPRINTS, STORY

# the same servers as tests/test_dedupe.py: the conftest Redis and Redis 6.2
redis62, client, index = base.redis62, base.client, base.index

DOCS = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines()[:40]]
V1_SCRIPT = (Path(__file__).resolve().parent / "data" / "dedupe_index_v1.lua").read_text(encoding="utf-8")


@pytest.mark.parametrize("retention", [1, 2, 7, 30, 90, 365])
def test_a_lookup_reads_at_most_four_keys_whatever_the_retention(retention, redis_client, keys):
    index = DedupeIndex(redis_client, keys, retention_days=retention)
    sizes = {len(index.window(NOW + h * 3600)) for h in range(0, 24 * 2 * index.period_days, 7)}
    assert max(sizes) <= dedupe.INDEX_KEYS
    # and the window covers every day of the retention: the periods of today - retention .. today
    today = int(NOW // DAY)
    covered = {day // index.period_days for day in range(today - retention, today + 1)}
    assert covered == set(index.periods(NOW))


def test_every_key_expires_within_retention_plus_one_period(index, client, keys):
    """Redis 6.2 has no per-field expiry: whole keys expire, none much beyond the window, and the period
    hash an article went into lives until at least the end of its retention."""
    limit = (index.retention_days + index.period_days + 1) * DAY
    created = {}  # period -> the (simulated) time of its first insert, which sets its TTL
    for n in range(40):  # an article a day for 40 days (several periods), and a reprint of each
        now = NOW + n * DAY
        assert not index.check_and_insert(f"a{n}", f"u{n}", DOCS[n], now=now).duplicate
        assert index.check_and_insert(f"r{n}", f"w{n}", "转载：\n" + DOCS[n], now=now).original_id == f"a{n}"
        today, period = int(now // DAY), int(now // DAY) // index.period_days
        deadline = ((period + 1) * index.period_days + index.retention_days) * DAY
        # (Redis's clock does not move with the simulated days: a TTL is measured from the write that set it)
        ttl, since = client.ttl(keys.fp_period(index.period_days, period)), created.setdefault(period, now)
        assert (today + 1 + index.retention_days) * DAY - now <= ttl + since - now + 1
        assert abs(since + ttl - deadline) <= 2
        for key in client.scan_iter(match=f"{keys.prefix}*"):  # TTLs set at earlier writes only shrink
            assert 0 < client.ttl(key) <= limit, key


def _v1_insert(client, keys, item_id, url, text, now, retention=30, min_chars=80):
    """What check_and_insert did before the period hashes (the script of that version, its arguments)."""
    ev = evidence(text)
    packed = b"".join(h.to_bytes(4, "big") + n.to_bytes(2, "big") for h, n in ev.clauses.items())
    today = int(now // DAY)
    ttl = max(1, int((today + 1 + retention) * DAY - now))
    window = [keys.fp_bucket(day) for day in range(today, today - retention - 1, -1)]
    return client.eval(V1_SCRIPT, len(window), *window, "insert", item_id, url, ev.simhash >> 32,
                       ev.simhash & 0xFFFFFFFF, ev.length, ev.weight, packed, defaults.DEDUPE_MAX_DISTANCE,
                       defaults.DEDUPE_CONTAINMENT_PER_MILLE, defaults.DEDUPE_MIN_SHARED_CHARS, min_chars, ttl,
                       keys.reprints(""))


def test_an_upgrade_keeps_finding_reprints_of_articles_indexed_before_it(index, client, keys):
    _v1_insert(client, keys, "a1", "https://site/a1", STORY, now=NOW - 10 * DAY)
    _v1_insert(client, keys, "b1", "https://site/b1", FOLLOW_UP, now=NOW - 2 * DAY)
    old_day = keys.fp_bucket(int((NOW - 10 * DAY) // DAY))
    assert client.exists(old_day)
    assert index.count(now=NOW) == 2  # counted before the move as after it
    for n, kind in enumerate(["edited", "traditional-tw", "lead-only", "boilerplate"]):
        verdict = index.check_and_insert(f"r{n}", f"https://other/{n}", REPRINTS[kind], now=NOW + n)
        assert verdict.duplicate and verdict.original_id == "a1", (kind, verdict)
    assert index.check(FOLLOW_UP, now=NOW).original_id == "b1"
    assert not client.exists(old_day)  # moved: lookups read the period hashes only
    assert not list(client.scan_iter(match=f"{keys.prefix}:fp:*"))
    assert index.count(now=NOW) == 2
    assert index.reprints("a1") == [f"https://other/{n}" for n in range(4)]
    # the moved articles still leave the window after the retention counted from their own day
    assert not index.check(REPRINTS["edited"], now=NOW + 21 * DAY).duplicate
    assert index.check(FOLLOW_UP, now=NOW + 21 * DAY).original_id == "b1"


def test_upgraded_layout_equals_what_the_script_writes(client, keys):
    """Moving old days writes exactly the records, blocks and postings that inserting afresh writes."""
    texts = [STORY, FOLLOW_UP, REPRINTS["traditional-hk"] + "\n另有报道" * 40]
    via_upgrade = DedupeIndex(client, keys.__class__(keys.prefix + ":up"))
    fresh = DedupeIndex(client, keys.__class__(keys.prefix + ":fresh"))
    for n, text in enumerate(texts[:2]):
        _v1_insert(client, via_upgrade.keys, f"a{n}", f"u{n}", text, now=NOW)
        fresh.check_and_insert(f"a{n}", f"u{n}", text, now=NOW)
    assert via_upgrade.upgrade(now=NOW) == 2
    assert via_upgrade.upgrade(now=NOW) == 0  # once
    for each in (via_upgrade, fresh):
        each.check_and_insert("a2", "u2", texts[2], now=NOW + 5)

    def content(each):
        raw = client.hgetall(each.window(NOW)[0])
        width = {b"b": 11, b"s": 5}
        return {f: sorted(v[i:i + width[f[:1]]] for i in range(0, len(v), width[f[:1]])) if f[:1] in width else v
                for f, v in raw.items()}

    assert content(via_upgrade) == content(fresh)


def _bench_fill():
    """bench/dedupe_fill.py, the fast fill of bench/dedupe_index.py."""
    path = Path(__file__).resolve().parents[1] / "bench" / "dedupe_fill.py"
    spec = importlib.util.spec_from_file_location("bench_dedupe_fill", path)
    module = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    return module


def test_the_benchmarks_fast_fill_writes_what_check_and_insert_writes(client, keys):
    """The index benchmark writes a million articles as protocol bytes built with numpy; its figures are the
    product's only if that fill writes, byte for byte, what inserting the articles one by one writes."""
    fill = _bench_fill()
    arts = fill.synthetic(120, [evidence(d) for d in DOCS], np.random.default_rng(3), int(NOW // DAY))
    # the orders within a field: two clauses of one article sharing a field and a length (by hash), and two
    # articles sharing a fingerprint block (far apart otherwise), besides what chance shares among 120
    at = int(arts.starts[5])
    arts.lengths[at:at + 2] = arts.lengths[at:int(arts.starts[6])].max() + 1
    arts.hashes[at:at + 2] = [0x2468ACE0, 0x2468ACE2]
    arts.fps[7] = (arts.fps[6] & np.uint64(0xFFFF << 48)) | (~arts.fps[6] & np.uint64((1 << 48) - 1))
    assert arts.days[6] == arts.days[7]
    via_script = DedupeIndex(client, keys.__class__(keys.prefix + ":script"))
    via_fill = DedupeIndex(client, keys.__class__(keys.prefix + ":fill"))
    fill.script_fill(via_script, arts, NOW)
    fill.fill(via_fill, arts, NOW)
    assert fill.differences(client, via_script, via_fill, NOW) == []
    assert via_fill.count(now=NOW) == 120
    # and the filled index answers as the product's: a reprint of article 7 (its evidence) is found
    verdict = via_fill.insert_evidence("again", "https://x/again", arts.evidence(7), now=NOW)
    assert verdict.duplicate and verdict.original_id == fill.item_id(7)


def test_an_insert_after_a_partial_read_appends_to_every_field(client, keys):
    """A chance match of one long clause makes an article hopeful, so the lookup reads the other clause fields,
    a part of them at a time; the insert must still append to every field it writes, never overwrite one."""
    fill = _bench_fill()
    arts = fill.synthetic(20000, [evidence(d) for d in DOCS], np.random.default_rng(5), int(NOW // DAY))
    index = DedupeIndex(client, keys)
    fill.fill(index, arts, NOW)  # ~4 postings in each clause field: nothing to lose goes unnoticed

    def setup():  # an original, and a new article quoting one of its clauses (found, not enough to be a reprint)
        for a, b in itertools.permutations(DOCS[:12], 2):
            ea = evidence(a)
            for piece in sorted(re.split("[，。：；\n]", a), key=len, reverse=True)[:6]:
                eb = evidence(b + "\n" + piece)
                ordered = longest_first(eb)
                first = dict(ordered[:first_clauses(eb, ordered)])
                shared = sum(n for h, n in first.items() if h in ea.clauses)
                most = shared + eb.weight - sum(first.values())
                if shared and most >= defaults.DEDUPE_MIN_SHARED_CHARS and \
                        most * 1000 >= defaults.DEDUPE_CONTAINMENT_PER_MILLE * eb.weight and not decide(ea, eb, 80)[0]:
                    return a, b + "\n" + piece, eb
        raise AssertionError("no article quoting one clause of another in the corpus sample")

    a, b, eb = setup()
    assert not index.check_and_insert("orig", "https://site/orig", a, now=NOW).duplicate
    blocks, clauses = dedupe.layout(eb)
    names = [blocks[i:i + 4] for i in range(0, 16, 4)] + [clauses[i:i + 4] for i in range(0, len(clauses), 8)]
    key = index.window(NOW)[0]
    before = dict(zip(names, client.hmget(key, names), strict=True))
    num = int(client.hget(key, "n")) + 1
    assert not index.check_and_insert("quote", "https://site/quote", b, now=NOW).duplicate
    expected = {f: v or b"" for f, v in before.items()}
    numb = num.to_bytes(3, "big")
    for f in names[:4]:
        expected[f] += eb.simhash.to_bytes(8, "big") + numb
    for i in range(0, len(clauses), 8):
        expected[clauses[i:i + 4]] += clauses[i + 4:i + 6] + numb
    assert dict(zip(names, client.hmget(key, names), strict=True)) == expected
    assert index.check(a, now=NOW).original_id == "orig"


def test_the_nearest_fingerprint_wins_across_periods(index):
    """A fingerprint match in today's period does not end the search: an older period's nearer one wins (the
    older periods are then read for their fingerprint blocks only)."""
    x = 0x0123456789ABCDEF
    older = Evidence(x, 900, {2 * n: 30 for n in range(1, 31)})
    newer = Evidence(x ^ 0b1111, 900, {2 * n: 30 for n in range(100, 130)})  # 4 bits from `older`: not its reprint
    assert not index.insert_evidence("older", "u-older", older, now=NOW - 20 * DAY).duplicate
    assert not index.insert_evidence("newer", "u-newer", newer, now=NOW).duplicate
    assert index.window(NOW)[0] != index.window(NOW - 20 * DAY)[0]  # two periods
    query = Evidence(x ^ 0b1, 900, {2 * n: 30 for n in range(200, 230)})  # 1 bit from `older`, 3 from `newer`
    verdict = index.insert_evidence("q", "u-q", query, now=NOW)
    assert (verdict.original_id, verdict.distance, verdict.reason) == ("older", 1, "simhash")


def test_an_article_of_thousands_of_clauses_is_indexed_and_found(index):
    """Every list the script builds from an article's clauses is taken in slices: Lua's stack holds ~8,000
    values, and a long text (100,000 characters) has thousands of sampled clauses."""
    rng = np.random.default_rng(3)
    hashes = (rng.choice(2**31, size=6000, replace=False) * 2).tolist()
    lengths = rng.integers(8, 60, size=6000).tolist()
    ev = Evidence(int(rng.integers(0, 2**63)), 200_000, dict(zip(hashes, lengths, strict=True)))
    assert index.insert_evidence("long", "u-long", ev, now=NOW).reason == "new"
    again = Evidence(ev.simhash ^ 0b111 << 40, ev.length, ev.clauses)  # 3 bits away: the fingerprint finds it
    assert index.insert_evidence("copy", "u-copy", again, now=NOW + 1).original_id == "long"
    lead = Evidence(ev.simhash ^ 0xFFFF_FFFF, ev.length, dict(list(ev.clauses.items())[:4000]))  # clauses only
    verdict = index.insert_evidence("lead", "u-lead", lead, now=NOW + 2)
    assert (verdict.original_id, verdict.reason) == ("long", "clauses")


# --- a changed retention (another period length) keeps what was indexed before -------------------------------

def test_a_changed_retention_keeps_finding_reprints_of_articles_indexed_before_it(client, keys):
    """Period hashes of the old length are read until they expire (newswatch/fp_periods.py); the old code
    read only the new length's hashes: an empty index after the change."""
    before = DedupeIndex(client, keys, retention_days=30, min_chars=80)
    for n in range(3):
        assert not before.check_and_insert(f"a{n}", f"u{n}", DOCS[n], now=NOW).duplicate
    after = DedupeIndex(client, keys, retention_days=10, min_chars=80)  # periods of 5 days instead of 15
    later = NOW + 2 * DAY
    for n in range(3):
        verdict = after.check_and_insert(f"r{n}", f"w{n}", "转载：\n" + DOCS[n], now=later)
        assert (verdict.duplicate, verdict.original_id) == (True, f"a{n}"), verdict
    assert not after.check_and_insert("new", "unew", DOCS[3], now=later).duplicate
    # the new article went into the new length's hash; both lengths are recorded and counted
    assert client.hget(keys.fp_period(after.period_days, int(later // DAY) // after.period_days), "n") == b"1"
    assert client.smembers(keys.fp_lengths) == {b"15", b"5"}
    assert after.count(now=later) == 4
    old_keys = {key for key, _ in keys.fp_window(later, 10, 15)}
    assert old_keys <= set(after.window(later)) and after.window(later)[0] == keys.fp_window(later, 10)[0][0]
    # the new retention's own rule: an article indexed 11 days before is past it, whatever hash holds it
    assert not after.check("转载：\n" + DOCS[0], now=NOW + 11 * DAY).duplicate


def test_an_index_from_before_the_record_of_lengths_is_found_and_expired_lengths_forgotten(client, keys):
    before = DedupeIndex(client, keys, retention_days=30, min_chars=80)
    assert not before.check_and_insert("a0", "u0", DOCS[0], now=NOW).duplicate
    client.delete(keys.fp_lengths)  # as a version before the record left it
    after = DedupeIndex(client, keys, retention_days=10, min_chars=80)
    assert after.check("转载：\n" + DOCS[0], now=NOW + DAY).original_id == "a0"  # found by one SCAN
    assert client.smembers(keys.fp_lengths) == {b"15"}
    for key, _ in keys.fp_window(NOW + DAY, 10, 15):  # the old length's hashes expire
        client.delete(key)
    fresh = DedupeIndex(client, keys, retention_days=10, min_chars=80)
    assert fresh.window(NOW + DAY) == [key for key, _ in keys.fp_window(NOW + DAY, 10)]
    assert client.smembers(keys.fp_lengths) == set()  # forgotten (and nothing else written by a lookup)
