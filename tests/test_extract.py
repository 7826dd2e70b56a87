"""Extraction from the replica's pages: the seed article field by field, the generic fallback, list pages."""

from __future__ import annotations

import pytest

from crawler.extract import extract_article, parse_date, unwrap_image
from crawler.listing import parse_list_page
from crawler.sites import load_profile
from tests.replica import (
    SEED,
    SEED_ID,
    Article,
    Replica,
    seed_article,
    seed_recommended_titles,
    standard_site,
)

SITE = "https://daydaynews.cc"
PROFILE = load_profile()


@pytest.fixture(scope="module")
def site():
    replica, expected = standard_site()
    return replica, expected


def _extract(replica: Replica, article_id: int, base: str = SITE):
    article = replica.articles[article_id]
    return extract_article(replica.render_article(article).encode("utf-8"), base + article.path, PROFILE)


def _seed_lines() -> list[str]:
    return [line.strip() for line in SEED.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_seed_page_fields(site):
    replica, _ = site
    got = _extract(replica, SEED_ID)
    seed = seed_article()
    assert got.title == "俄副外長放風,美國要主動邁出改善美俄關係第一步"
    assert got.published_at == "2025-02-10T11:20:38+08:00"
    assert got.category == "國際"
    assert got.views == 7927
    assert got.summary == seed.lead
    assert got.warnings == []
    assert got.methods["title"] == "profile:.entry-title::text"
    assert got.methods["body"] == "profile:.single-content"
    assert got.methods["published_at"] == "profile:.my-date::text"
    assert got.methods["summary"] == "profile:.abstract"


def test_seed_body_is_the_article_and_nothing_else(site):
    replica, _ = site
    got = _extract(replica, SEED_ID)
    seed = seed_article()
    assert got.paragraphs == seed.paragraphs  # in order, each once
    assert got.body == "\n".join(seed.paragraphs)
    assert len(set(got.paragraphs)) == len(got.paragraphs)
    assert "天天要聞" not in got.body
    assert seed.lead not in got.body  # kept once, as the summary
    assert "收藏" not in got.body and "分類資訊推薦" not in got.body
    for title in seed_recommended_titles():
        assert title not in got.body
    for replica_title in (a.title for a in replica.articles.values() if a.id != SEED_ID):
        assert replica_title not in got.body


def test_seed_body_matches_the_real_page_text():
    """The seed text (what a text extractor saw on the live page) between the lead and the block."""
    lines = _seed_lines()
    title = lines[0]
    real_body = [line for line in lines[3:lines.index("國際分類資訊推薦")]
                 if not line.startswith(title + " - 天天要聞(")]
    replica = Replica()
    replica.add(seed_article())
    got = _extract(replica, SEED_ID)
    assert got.paragraphs == real_body
    assert got.summary == lines[2]


def test_images_unwrapped_from_the_proxy(site):
    replica, _ = site
    got = _extract(replica, SEED_ID)
    assert got.images == [src for src, _ in seed_article().images]
    assert all("daydaynews" not in url for url in got.images)


def test_recommended_links_are_absolute_articles(site):
    replica, _ = site
    replica_base = "http://127.0.0.1:8123"
    got = _extract(replica, SEED_ID, base=replica_base)
    expected = [replica_base + a.path for a in replica.newest_first("international") if a.id != SEED_ID][:5]
    assert got.recommended_links == expected


def test_foreign_layout_falls_back_to_the_generic_extractor(site):
    replica, expected = site
    article = replica.articles[expected["foreign"][0]]
    got = _extract(replica, article.id)
    assert got.methods["body"] == "generic:trafilatura"
    assert got.title == article.title
    assert got.paragraphs == [article.lead, *article.paragraphs]
    assert "分類資訊推薦" not in got.body
    assert got.published_at == "2025-03-25T10:00:00+08:00"
    assert got.methods["published_at"] == "generic:date-pattern"
    assert got.category == "國際" and got.methods["category"] == "url-slug"


def test_page_without_body_yields_no_paragraphs(site):
    replica, expected = site
    got = _extract(replica, expected["nobody"][0])
    assert got.paragraphs == []
    assert got.body == ""
    assert got.methods["body"] == "missing"
    assert "no-body" in got.warnings
    assert got.title == "美俄會談最新消息（視頻）"  # the page is still identifiable


def test_missing_date_is_null_with_a_warning_never_a_guess():
    replica = Replica()
    article = Article(id=5, title="無日期的文章", paragraphs=["第一段，其中提到2025年02月10日11:20:38這個時間。"],
                      published=None)
    replica.add(article)
    got = _extract(replica, 5)
    assert got.published_at is None
    assert "no-date" in got.warnings
    assert got.methods["published_at"] == "missing"


def test_malformed_date_is_null_with_a_warning():
    replica = Replica()
    replica.add(Article(id=6, title="壞日期", paragraphs=["正文。"], published="2025年13月45日99:99:99"))
    got = _extract(replica, 6)
    assert got.published_at is None
    assert any(w.startswith("bad-date: 2025年13月45日") for w in got.warnings)


def test_category_from_url_slug_when_the_page_has_none():
    html = ('<html><body><h1 class="entry-title">標題</h1><span class="my-date">2025年01月02日03:04:05</span>'
            '<div class="single-content"><p>科技新聞的正文。</p></div></body></html>')
    got = extract_article(html, SITE + "/zh-tw/technology/42.html", PROFILE)
    assert got.category == "科技" and got.methods["category"] == "url-slug"
    assert got.published_at == "2025-01-02T03:04:05+08:00"
    assert got.summary == "科技新聞的正文。" and got.methods["summary"] == "body-first-sentences"
    assert got.views is None and got.methods["views"] == "missing"


def test_date_parsing():
    assert parse_date("2025年2月3日 4:05", PROFILE) == "2025-02-03T04:05:00+08:00"
    assert parse_date("2025-02-10T11:20:38", PROFILE) == "2025-02-10T11:20:38+08:00"
    assert parse_date("2025-02-10T03:20:38+00:00", PROFILE) == "2025-02-10T03:20:38+00:00"
    assert parse_date("昨天", PROFILE) is None
    assert parse_date("2025年02月30日10:00:00", PROFILE) is None


def test_image_unwrapping():
    assert unwrap_image("https://s167.daydaynews.cc/?url=https%3A%2F%2Fa.example%2Fb.jpg", SITE, PROFILE) == \
        "https://a.example/b.jpg"
    assert unwrap_image("https://s167.daydaynews.cc/?url=x", SITE, PROFILE) is None
    assert unwrap_image("/img/c.png", SITE, PROFILE) == SITE + "/img/c.png"
    assert unwrap_image("data:image/png;base64,AAAA", SITE, PROFILE) is None
    assert unwrap_image("http://[::1", SITE, PROFILE) is None


def test_list_page_from_the_replica(site):
    replica, _ = site
    page = parse_list_page(replica.render_list("international", 1).encode(), SITE + "/international?page=1", PROFILE)
    newest = replica.newest_first("international")[:10]
    assert page.method == "profile"
    assert page.entries == 10
    assert page.article_urls == [SITE + a.path for a in newest]


def test_list_page_excludes_other_languages_and_videos_and_repeats():
    html = ('<html><body>'
            '<article><h2 class="entry-title"><a href="/en/international/1.html">en</a></h2></article>'
            '<article><h2 class="entry-title"><a href="/video/2.html">video</a></h2></article>'
            '<article><h2 class="entry-title"><a href="/international/3.html">a</a></h2></article>'
            '<article><h2 class="entry-title"><a href="/zh-tw/international/3.html">a again</a></h2></article>'
            '<article><h2 class="entry-title"><a href="https://daydaynews.cc/international/4.html">b</a></h2></article>'
            '<article><h2 class="entry-title"><a href="javascript:void(0)">x</a></h2></article>'
            '</body></html>')
    page = parse_list_page(html, SITE + "/international?page=1", PROFILE)
    assert page.article_urls == [SITE + "/international/3.html", SITE + "/international/4.html"]
    assert page.method == "profile" and page.entries == 6


def test_list_page_fallback_when_entries_do_not_match():
    html = ('<html><body><ul class="news"><li><a href="/international/9.html">n</a></li>'
            '<li><a href="/en/international/8.html">en</a></li><li><a href="/international">cat</a></li>'
            '<li><a href="/international/7.html">m</a></li></ul></body></html>')
    page = parse_list_page(html, SITE + "/international?page=1", PROFILE)
    assert page.method == "fallback"
    assert page.entries == 0
    assert page.article_urls == [SITE + "/international/9.html", SITE + "/international/7.html"]


def test_page_with_no_article_links():
    page = parse_list_page(b"<html><body><p>404</p></body></html>", SITE + "/international?page=99", PROFILE)
    assert page.article_urls == [] and page.method == "fallback"


@pytest.mark.parametrize("html", [b"", b"\x00\xff\xfe garbage", "<p>\ud800</p>", b"<html><body><div>"])
def test_degenerate_pages_give_empty_results(html):
    got = extract_article(html, SITE + "/international/1.html", PROFILE)
    assert got.paragraphs == [] and got.body == ""
    assert "no-date" in got.warnings
    assert parse_list_page(html, SITE + "/international?page=1", PROFILE).article_urls == []


def test_legacy_encoding_declared_in_meta():
    html = ('<html><head><meta charset="big5"></head><body><h1 class="entry-title">美俄會談</h1>'
            '<div class="single-content"><p>正文內容。</p></div></body></html>').encode("big5")
    got = extract_article(html, SITE + "/international/1.html", PROFILE)
    assert got.title == "美俄會談"
    assert got.paragraphs == ["正文內容。"]


def test_recommended_block_found_by_its_heading_when_unmarked():
    """A redesign that drops the `.related` class: the `…分類資訊推薦` heading still marks the block."""
    html = ('<html><head><title>美俄接觸 - 天天要聞</title></head><body><h1 class="entry-title">美俄接觸</h1>'
            '<span class="my-date">2025年02月10日11:20:38</span>'
            '<div class="single-content"><p>第一段正文。</p><p>第二段正文。</p>'
            '<div class="box"><h3><span>國際分類資訊推薦</span></h3>'
            '<ul><li><a href="/international/77.html"><img src="https://s167.daydaynews.cc/?url=https%3A%2F%2Fi.example%2Fr.jpg">'
            '推薦標題甲</a><p>推薦摘要甲</p></li></ul></div></div>'
            '<div><p>國際分類資訊推薦</p><a href="/international/78.html">推薦標題乙</a><p>推薦摘要乙</p></div>'
            '</body></html>')
    got = extract_article(html, SITE + "/international/1.html", PROFILE)
    assert got.paragraphs == ["第一段正文。", "第二段正文。"]
    assert got.recommended_links == [SITE + "/international/77.html", SITE + "/international/78.html"]
    assert got.images == []  # the recommended items' thumbnails are not the article's images
    assert got.methods["body"] == "profile:.single-content"


def test_lead_repeated_as_first_paragraph_is_kept_once():
    html = ('<h1 class="entry-title">標題</h1><span class="my-date">2025年02月10日11:20:38</span>'
            '<div class="single-content"><div class="abstract">導語一句。</div><p>導語一句。</p><p>正文。</p>'
            '<p>正文。</p></div>')
    got = extract_article(html, SITE + "/international/1.html", PROFILE)
    assert got.summary == "導語一句。"
    assert got.paragraphs == ["正文。"]


def test_the_content_type_charset_decides_the_decoding():
    """No <meta charset>: the response's header says GBK (w3lib's html_to_unicode, as Scrapy's response.text)."""
    page = ('<html><body><h1 class="entry-title">美俄会谈在利雅得举行</h1><span class="my-date">2025年02月18日20:15:00'
            '</span><div class="single-content"><p>美俄两国外长在利雅得举行会谈，讨论双边关系。</p></div></body></html>')
    got = extract_article(page.encode("gbk"), "http://127.0.0.1:1/international/1.html", PROFILE,
                          "text/html; charset=GBK")
    assert got.title == "美俄会谈在利雅得举行" and got.paragraphs == ["美俄两国外长在利雅得举行会谈，讨论双边关系。"]
    # Without the header the same bytes are not UTF-8: the title does not come out right.
    assert extract_article(page.encode("gbk"), "http://127.0.0.1:1/international/1.html", PROFILE).title != got.title
