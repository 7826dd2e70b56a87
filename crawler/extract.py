"""Extraction of an article page: plain fields, each with the method that found it. Pure functions on HTML.

Every site-specific detail (selectors, URL patterns, the date format, site furniture) comes from the
site profile (`crawler/sites/<name>.toml`). When the profile finds no title or no body — the sign of a
redesign — the generic extractor (crawler/generic.py) takes over, and `methods` records which way each
field was found, so `newswatch probe` and the spider's alerts can tell a selector that stopped matching
from a page that has no article.

The input is hostile by assumption (see crawler/markup.py): nothing here raises on page content, and the
profile's regular expressions are RE2 (linear time) and run only on short strings anyway.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qs, urljoin, urlsplit

from lxml import etree

from crawler.generic import MIN_GENERIC_BODY_CHARS, generic_article
from crawler.listing import article_url
from crawler.markup import (
    MAX_CHARS,
    clean_space,
    decode_html,
    drop,
    drop_all,
    first,
    parse,
    select,
    select_values,
    text_lines,
)
from crawler.sites import SiteProfile

log = logging.getLogger(__name__)

# Profile patterns run only on strings this short: a line longer than this is body text, not furniture.
MAX_LINE_FOR_REGEX = 500
MAX_DATE_TEXT = 120
SUMMARY_CHARS = 120

_SENTENCE_END = re.compile(r"(?<=[。！？!?])")
_DIGITS = re.compile(r"\d[\d,]{0,15}")


@dataclass
class ExtractedArticle:
    title: str | None = None
    published_at: str | None = None
    category: str | None = None
    views: int | None = None
    summary: str | None = None
    paragraphs: list[str] = field(default_factory=list)
    body: str = ""
    images: list[str] = field(default_factory=list)
    methods: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    recommended_links: list[str] = field(default_factory=list)


# --- the recommended block -----------------------------------------------------------------------

def _recommended_blocks(root, profile: SiteProfile) -> list:
    """Elements holding the `…分類資訊推薦` block: by the profile's selectors, else by its heading."""
    blocks = [found for css in profile.article.get("recommended", []) for found in select(root, css)]
    heading = profile.article.get("recommended_heading")
    if heading and not blocks:
        for element in root.xpath("//*[text()[contains(., $h)]]", h=heading, smart_strings=False)[:5]:
            own_text = " ".join(t for t in element.xpath("text()") if heading in t)
            if not isinstance(element, etree._Element) or len(clean_space(own_text)) > 40:
                continue  # a sentence that mentions the words, not a heading
            # From a heading nested in its own wrapper (<h3><span>…</span></h3>) up to the level where the
            # block's items follow it; never the whole body.
            for _ in range(5):
                parent = element.getparent()
                if element.getnext() is not None or parent is None or parent.tag in ("body", "html"):
                    break
                element = parent
            if element.tag in ("body", "html"):
                continue
            # The heading and everything after it inside the heading's container.
            blocks.append(element)
            blocks.extend(element.itersiblings())
    return [b for b in blocks if isinstance(b, etree._Element)]


def _links(blocks: list, url: str, profile: SiteProfile) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for block in blocks:
        for href in block.xpath(".//@href | self::a/@href"):
            absolute = article_url(str(href), url, profile)
            if absolute and absolute not in seen:
                seen.add(absolute)
                out.append(absolute)
    return out


# --- fields --------------------------------------------------------------------------------------

def parse_date(text: str, profile: SiteProfile) -> str | None:
    """The site's `YYYY年MM月DD日HH:MM:SS` (or an ISO timestamp) as ISO 8601 with the site's offset."""
    text = text[:MAX_DATE_TEXT]
    offset = profile.article.get("tz_offset", "+08:00")
    match = profile.date_re.search(text)
    try:
        if match:
            parts = match.groupdict()
            value = datetime(int(parts["y"]), int(parts["m"]), int(parts["d"]),
                             int(parts["H"]), int(parts["M"]), int(parts.get("S") or 0))
            return value.isoformat() + offset
        value = datetime.fromisoformat(text.strip())
    except (ValueError, OverflowError):
        return None
    if value.tzinfo is None:
        return value.isoformat() + offset
    return value.isoformat()


def _views(text: str) -> int | None:
    match = _DIGITS.search(text[:MAX_DATE_TEXT])
    if not match:
        return None
    return int(match.group().replace(",", ""))


def unwrap_image(src: str, base: str, profile: SiteProfile) -> str | None:
    """The original image URL behind the site's image proxy; None for anything that is not http(s)."""
    try:
        absolute = urljoin(base, src.strip()[:4000])
        parts = urlsplit(absolute)
        if parts.hostname in profile.data["urls"].get("image_proxy_hosts", []):
            inner = parse_qs(parts.query).get(profile.data["urls"].get("image_proxy_param", "url"))
            if not inner:
                return None
            absolute = inner[0]
            parts = urlsplit(absolute)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        return absolute
    except ValueError:
        return None


def first_sentences(text: str, limit: int = SUMMARY_CHARS) -> str:
    """The opening sentence(s) of a paragraph, up to about `limit` characters."""
    out = ""
    for sentence in _SENTENCE_END.split(text[: limit * 4]):
        if out and len(out) + len(sentence) > limit:
            break
        out += sentence
    return out[: limit * 2].strip()


def _lead(root, selectors: list[str]) -> tuple[str | None, str | None]:
    """The abstract's whole text (all its descendants), and the selector that found it."""
    for css in selectors:
        for found in select(root, css)[:1]:
            text = found.xpath("string()") if isinstance(found, etree._Element) else str(found)
            text = clean_space(text or "")
            if text:
                return text, css
    return None, None


def _is_furniture(line: str, title: str | None, profile: SiteProfile) -> bool:
    """Caption lines (`<title> - 天天要聞(<caption>)`), the page title repeated, short lines naming the site."""
    if title and line == title:
        return True
    if len(line) <= MAX_LINE_FOR_REGEX and profile.is_furniture(line):
        return True
    return len(line) < 40 and profile.site_name in line


def _clean_paragraphs(lines: list[str], title: str | None, lead: str | None,
                      profile: SiteProfile) -> list[str]:
    heading = profile.article.get("recommended_heading") or "\0"
    out: list[str] = []
    seen = {lead} if lead else set()
    for line in lines:
        if heading in line and len(line) < 40:
            break  # the recommended block: nothing after it is the article
        if line in seen or _is_furniture(line, title, profile):
            continue
        seen.add(line)
        out.append(line)
    return out


# --- the two entry points ------------------------------------------------------------------------

def extract_article(html: str | bytes, url: str, profile: SiteProfile,
                    content_type: str | None = None) -> ExtractedArticle:
    """Every field of an article page, with the method that found each and warnings for what is missing.
    `content_type`: the response's Content-Type header, whose charset decides the decoding."""
    result = ExtractedArticle()
    text = decode_html(html, content_type)
    if len(text) >= MAX_CHARS:
        result.warnings.append(f"truncated: page cut at {MAX_CHARS} characters")
    page = parse(text, url)
    spec = profile.article
    methods = result.methods

    # The recommended block is a source of links, never of any field: read the links, then take it out.
    # The tree is this call's own (parsed above), so the block is dropped in place, not from a copy.
    blocks = _recommended_blocks(page, profile)
    result.recommended_links = _links(blocks, url, profile)
    for block in blocks:
        drop(block)

    title, css = first(page, spec["title"])
    if title:
        if len(title) <= MAX_LINE_FOR_REGEX:
            title = profile.strip_title_suffix(title)
        result.title, methods["title"] = title[:MAX_LINE_FOR_REGEX], f"profile:{css}"

    lead, lead_css = _lead(page, spec.get("abstract", []))
    body_el = None
    for css in spec["body"]:
        found = select(page, css)
        if found and isinstance(found[0], etree._Element):
            body_el, body_css = copy.deepcopy(found[0]), css
            break
    lines: list[str] = []
    if body_el is not None:
        drop_all(body_el, spec.get("body_exclude", []))
        for css in spec.get("images", []):
            for src in select_values(body_el, css):
                image = unwrap_image(src, url, profile)
                if image and image not in result.images:
                    result.images.append(image)
        lines = text_lines(body_el, in_place=True)  # body_el is this call's own copy
    paragraphs = _clean_paragraphs(lines, result.title, lead, profile)
    if paragraphs:
        methods["body"] = f"profile:{body_css}"

    used_generic = not result.title or not paragraphs
    if used_generic:
        generic_page = copy.deepcopy(page)
        # The meta line and title are fields, not body text: take their elements out of the generic's view.
        fields_css = [css.split("::")[0] for key in ("title", "date", "category", "views")
                      for css in spec.get(key, [])]
        drop_all(generic_page, spec.get("page_exclude", []) + spec.get("body_exclude", []) + fields_css)
        generic_title, generic_lines = generic_article(generic_page, url, not result.title, result.warnings)
        if not result.title and generic_title:
            result.title, methods["title"] = generic_title[:MAX_LINE_FOR_REGEX], "generic:trafilatura"
        if not paragraphs:
            paragraphs = _clean_paragraphs(generic_lines, result.title, lead, profile)
            if sum(map(len, paragraphs)) < MIN_GENERIC_BODY_CHARS:
                paragraphs = []
            if paragraphs:
                methods["body"] = "generic:trafilatura"
    result.paragraphs = paragraphs
    result.body = "\n".join(paragraphs)
    methods.setdefault("title", "missing")
    methods.setdefault("body", "missing")

    if lead:
        result.summary, methods["summary"] = lead, f"profile:{lead_css}"
    elif paragraphs:
        result.summary, methods["summary"] = first_sentences(paragraphs[0]), "body-first-sentences"
    else:
        methods["summary"] = "missing"

    _extract_date(result, page, profile, profile_layout=not used_generic)
    _extract_category(result, page, url, profile)
    views, css = first(page, spec.get("views", []))
    result.views = _views(views) if views else None
    methods["views"] = f"profile:{css}" if result.views is not None else "missing"
    if result.images:
        methods["images"] = f"profile:{spec.get('images', ['?'])[0]}"
    if not paragraphs:
        result.warnings.append("no-body")
    return result


def _extract_date(result: ExtractedArticle, page, profile: SiteProfile, profile_layout: bool) -> None:
    """The profile's date, or — only on a page the profile does not know — the site's date format in the
    page's own text. A date element that does not parse is a warning, never a guess from elsewhere."""
    raw, css = first(page, profile.article["date"])
    if raw:
        parsed = parse_date(raw, profile)
        if parsed:
            result.published_at, result.methods["published_at"] = parsed, f"profile:{css}"
        else:
            result.warnings.append(f"bad-date: {raw[:60]}")
            result.methods["published_at"] = "missing"
        return
    if not profile_layout:
        for line in text_lines(page)[:200]:
            if len(line) <= MAX_LINE_FOR_REGEX and profile.date_re.search(line):
                parsed = parse_date(profile.date_re.search(line).group(), profile)
                if parsed:
                    result.published_at, result.methods["published_at"] = parsed, "generic:date-pattern"
                    return
    result.warnings.append("no-date")
    result.methods["published_at"] = "missing"


def _extract_category(result: ExtractedArticle, page, url: str, profile: SiteProfile) -> None:
    name, css = first(page, profile.article.get("category", []))
    if name and len(name) <= 40:
        result.category, result.methods["category"] = name, f"profile:{css}"
        return
    try:
        ref = profile.article_ref(url)
    except ValueError:
        ref = None
    slug_name = profile.category_name(ref.category) if ref else None
    if slug_name:
        result.category, result.methods["category"] = slug_name, "url-slug"
    else:
        result.methods["category"] = "missing"
