"""Hostile input: random bytes and mutated real pages fed to the extractor and the list-page parser.

Property: no exception escapes, every call returns (pytest-timeout turns a hang into a failure), and what
comes back keeps its invariants. The base pages are the replica's own: the seed article, the foreign
layout, the page without a body, a People's Daily article, a list page. Mutations: truncation, spliced
random bytes, duplicated and deleted tags, a slice repeated many times, deep nesting. Inputs are bounded
(a few MB at most) and the example counts fixed, so the whole module runs in well under a minute.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from crawler.extract import extract_article
from crawler.listing import MAX_LIST_URLS, parse_list_page
from crawler.sites import load_profile
from tests.replica import SEED_ID, standard_site

PROFILE = load_profile()
ARTICLE_URL = "https://daydaynews.cc/international/3930612.html"
LIST_URL = "https://daydaynews.cc/international?page=1"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d([+-]\d\d:\d\d)$")
MAX_REPEAT_BYTES = 3_000_000


def _pages() -> list[bytes]:
    replica, expected = standard_site()
    ids = [SEED_ID, expected["foreign"][0], expected["nobody"][0], expected["off_topic"][0]]
    pages = [replica.render_article(replica.articles[i]) for i in ids]
    pages.append(replica.render_list("international", 1))
    return [page.encode("utf-8") for page in pages]


PAGES = _pages()
TAG = re.compile(rb"<[^<>]{0,200}>")
# No shrinking: a timeout raised inside an example (pytest-timeout on a loaded machine) would otherwise be
# "shrunk" for ever; the failing example is still reported as generated.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
FUZZ = settings(max_examples=120, deadline=None, derandomize=True, phases=NO_SHRINK,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def mutated_page(draw) -> bytes:
    page = draw(st.sampled_from(PAGES))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "splice", "dup-tag", "del-tag", "repeat", "nest", "charset"]))
        at = draw(st.integers(0, max(0, len(page) - 1)))
        if kind == "truncate":
            page = page[:at]
        elif kind == "splice":
            page = page[:at] + draw(st.binary(min_size=1, max_size=64)) + page[at:]
        elif kind in ("dup-tag", "del-tag"):
            tags = list(TAG.finditer(page))
            if not tags:
                continue
            tag = tags[draw(st.integers(0, len(tags) - 1))]
            times = draw(st.integers(2, 200)) if kind == "dup-tag" else 0
            page = page[:tag.start()] + tag.group() * times + page[tag.end():]
        elif kind == "repeat":
            piece = page[at:at + draw(st.integers(1, 400))]
            times = min(draw(st.integers(2, 20_000)), MAX_REPEAT_BYTES // max(1, len(piece)))
            page = page[:at] + piece * times + page[at:]
        elif kind == "nest":
            tag = draw(st.sampled_from([b"div", b"p", b"span", b"a", b"table"]))
            depth = draw(st.integers(10, 5_000))
            page = page[:at] + (b"<" + tag + b">") * depth + page[at:]
        else:
            charset = draw(st.sampled_from([b"big5", b"gb2312", b"utf-16", b"latin-1", b"no-such-charset"]))
            page = b'<meta charset="' + charset + b'">' + page
    return page


def _check(page: bytes | str) -> None:
    article = extract_article(page, ARTICLE_URL, PROFILE)
    # every field the result has is explained: a value and its method agree
    assert (article.title is None) == (article.methods["title"] == "missing")
    assert bool(article.paragraphs) == (article.methods["body"] != "missing")
    assert article.body == "\n".join(article.paragraphs)
    assert len(set(article.paragraphs)) == len(article.paragraphs)
    assert article.published_at is None or ISO.match(article.published_at)
    assert (article.published_at is None) == (article.methods["published_at"] == "missing")
    assert article.views is None or article.views >= 0
    assert all(url.startswith(("http://", "https://")) for url in article.images)
    assert all(PROFILE.article_ref(url) for url in article.recommended_links)
    listing = parse_list_page(page, LIST_URL, PROFILE)
    assert len(listing.article_urls) <= MAX_LIST_URLS
    assert listing.method in ("profile", "fallback")
    assert all(PROFILE.article_ref(url) for url in listing.article_urls)
    assert len({PROFILE.article_ref(u).item_id for u in listing.article_urls}) == len(listing.article_urls)


@pytest.mark.timeout(300)
@FUZZ
@given(mutated_page())
def test_mutated_real_pages(page):
    _check(page)


@pytest.mark.timeout(180)
@settings(max_examples=300, deadline=None, derandomize=True, phases=NO_SHRINK)
@given(st.binary(max_size=4096))
def test_random_bytes(page):
    _check(page)


@pytest.mark.timeout(180)
@settings(max_examples=150, deadline=None, derandomize=True, phases=NO_SHRINK)
@given(st.text(alphabet=st.sampled_from(list("<>/=\"' abcdiv p h1 .-天天要聞國際分類資訊推薦美俄會談2025年02月10日:\n\x00\ud800")),
               max_size=2000))
def test_random_markup_like_text(page):
    _check(page)


def test_mutations_keep_the_seed_extractable_when_they_miss_it():
    """A sanity check that the strategy's base pages are the real ones: unmutated, the seed extracts fully."""
    article = extract_article(PAGES[0], ARTICLE_URL, PROFILE)
    assert article.methods["body"] == "profile:.single-content" and len(article.paragraphs) == 15
