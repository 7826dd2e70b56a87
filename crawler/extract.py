"""Extraction: an article page or a list page of the site, as plain fields. Pure functions on HTML.

Every site-specific detail (selectors, URL patterns, the date format, the caption pattern) comes from the
site profile (`crawler/sites/<name>.toml`). When the profile finds no title or no body — the sign of a
redesign — a generic article extractor (trafilatura, offline) takes over, and `methods` records which
way each field was found, so `newswatch probe` and the spider's alerts can tell a selector that stopped
matching from a page that has no article.

The input is hostile by assumption: any bytes, any size. Nothing here raises on page content and nothing
runs in more than roughly linear time: the page is cut at `MAX_CHARS`, regular expressions only ever run
on short strings, and tree walks are iterative.
"""

from __future__ import annotations

import codecs
import copy
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from urllib.parse import parse_qs, urljoin, urlsplit

from lxml import etree
from parsel import Selector
from parsel.csstranslator import css2xpath

from crawler.sites import SiteProfile

log = logging.getLogger(__name__)

# A real article page is well under 1 MB; anything past this is cut (and a warning says so).
MAX_CHARS = 2_000_000
# List pages hold tens of entries; an enormous one is read this far and no further.
MAX_LIST_URLS = 2_000
# Regular expressions from the profile run only on strings this short (no backtracking blow-up).
MAX_LINE_FOR_REGEX = 500
MAX_DATE_TEXT = 120
SUMMARY_CHARS = 120
# What the generic extractor finds on a page with no article is a stray line or two (a label, garbage);
# below this much text it is not a body.
MIN_GENERIC_BODY_CHARS = 30
# trafilatura's time grows faster than the page (its own MAX_TREE_SIZE is checked only after the work is
# done); a real article page has a few thousand elements: a page with more is not handed to it.
MAX_GENERIC_ELEMENTS = 15_000

BLOCK_TAGS = frozenset(
    "p div br li ul ol h1 h2 h3 h4 h5 h6 section article header footer blockquote figure figcaption "
    "table tr td th dd dt dl pre hr main aside nav".split())
# Characters lxml refuses (and that no page needs): C0 controls except tab, newline, carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", re.I)
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u3000]+")
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


@dataclass
class ListPage:
    article_urls: list[str]
    method: str  # "profile" or "fallback"
    entries: int


# --- decoding and parsing ------------------------------------------------------------------------

def decode_html(html: str | bytes) -> str:
    """Text of a page from whatever arrived: BOM, then <meta charset>, then UTF-8 (bad bytes replaced)."""
    if isinstance(html, str):
        # Lone surrogates cannot be encoded for lxml; replace them.
        text = html.encode("utf-8", "replace").decode("utf-8")
    else:
        data = bytes(html[: MAX_CHARS * 4])
        encoding = "utf-8"
        for bom, name in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
            if data.startswith(bom):
                encoding = name
                break
        else:
            match = _META_CHARSET.search(data[:4096])
            if match:
                try:
                    encoding = codecs.lookup(match.group(1).decode("ascii")).name
                except (LookupError, UnicodeDecodeError):
                    encoding = "utf-8"
                if encoding in ("utf-16", "utf-16-le", "utf-16-be", "utf-32"):
                    encoding = "utf-8"  # a meta tag read as ASCII cannot be right about UTF-16
        try:
            text = data.decode(encoding, "replace")
        except LookupError:  # pragma: no cover - codecs.lookup already vetted the name
            text = data.decode("utf-8", "replace")
    return _CONTROL.sub("", text[:MAX_CHARS])


def _parse(text: str, url: str):
    """The page's lxml root, parsed as parsel parses it (lenient HTML, huge trees allowed)."""
    return Selector(text=text or "<html></html>", base_url=url).root


# Selectors are the profile's CSS (with parsel's ::text and ::attr()), applied to lxml elements. Each is
# translated and compiled once: parsel's Selector.css translates, builds an XPath evaluator and wraps
# every result in a new Selector on each call, a sixth of the analysis time of a page.
@lru_cache(maxsize=1024)
def _compiled(css: str) -> etree.XPath:
    return etree.XPath(css2xpath(css), smart_strings=False)


def select(node, css: str) -> list:
    """Elements (or strings, for ::text and ::attr()) matching `css` within `node`."""
    found = _compiled(css)(node)
    return found if isinstance(found, list) else [found]


def select_values(node, css: str) -> list[str]:
    """As parsel's `.css(css).getall()`: strings as they are, elements as their HTML."""
    return [etree.tostring(x, method="html", encoding="unicode", with_tail=False)
            if isinstance(x, etree._Element) else str(x) for x in select(node, css)]


def _first(root, selectors: list[str]) -> tuple[str | None, str | None]:
    """The first non-empty value any of the selectors finds, and that selector."""
    for css in selectors:
        for value in select_values(root, css):
            value = clean_space(value)
            if value:
                return value, css
    return None, None


def clean_space(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _drop(element) -> None:
    """Remove an element from its tree, keeping the text that follows it."""
    parent = element.getparent()
    if parent is None:
        return
    tail = element.tail
    if tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)


def _drop_all(root, selectors: list[str]) -> None:
    for css in selectors:
        for found in select(root, css):
            if found is not root and isinstance(found, etree._Element):
                _drop(found)


def text_lines(root, *, in_place: bool = False) -> list[str]:
    """The element's text as lines, one per block element (iterative: deep trees do not recurse).
    The tree is marked up on the way; `in_place` when the caller's tree is a private copy already."""
    if not in_place:
        root = copy.deepcopy(root)
    for node in list(root.iter(etree.Comment, etree.ProcessingInstruction)):
        _drop(node)
    for node in root.iter():
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag.lower() in BLOCK_TAGS:
            node.tail = "\n" + (node.tail or "")
            if tag.lower() != "br":
                node.text = "\n" + (node.text or "")
    lines = (clean_space(line) for line in "".join(root.itertext()).split("\n"))
    return [line for line in lines if line]


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
            absolute = _article_url(str(href), url, profile)
            if absolute and absolute not in seen:
                seen.add(absolute)
                out.append(absolute)
    return out


def _article_url(href: str, base: str, profile: SiteProfile) -> str | None:
    """The absolute URL of an article link, or None for anything else (or anything malformed)."""
    try:
        absolute = urljoin(base, href.strip()[:2000])
        if urlsplit(absolute).scheme not in ("http", "https"):
            return None
        return absolute if profile.article_ref(absolute) else None
    except ValueError:  # e.g. an invalid IPv6 host in a hostile href
        return None


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
    if len(line) <= MAX_LINE_FOR_REGEX and (profile.caption_re.match(line) or
                                            profile.title_suffix_re.search(line)):
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


def _generic(root, url: str, want_title: bool, warnings: list[str]) -> tuple[str | None, list[str]]:
    """Title and text lines by trafilatura, on a tree the caller has already stripped of site furniture."""
    import trafilatura

    size = sum(1 for _ in root.iter())
    if size > MAX_GENERIC_ELEMENTS:
        log.warning("generic extractor skipped on %s: %d elements (limit %d)", url, size, MAX_GENERIC_ELEMENTS)
        warnings.append(f"generic-skipped: {size} elements")
        return None, []
    try:
        # A tree (not a URL) in, and no fetching anywhere: trafilatura only reads what it is given.
        doc = trafilatura.bare_extraction(root, url=url, with_metadata=want_title, include_comments=False,
                                          include_tables=False, include_images=False)
    except Exception as exc:  # a third-party parser on hostile input: degrade, never raise
        log.warning("generic extractor failed on %s: %s: %s", url, type(exc).__name__, exc)
        warnings.append(f"generic-failed: {type(exc).__name__}")
        return None, []
    if doc is None:
        return None, []
    title = getattr(doc, "title", None)
    text = getattr(doc, "text", None) or ""
    return (clean_space(title) if title else None), [clean_space(x) for x in text.split("\n") if x.strip()]


# --- the two entry points ------------------------------------------------------------------------

def extract_article(html: str | bytes, url: str, profile: SiteProfile) -> ExtractedArticle:
    """Every field of an article page, with the method that found each and warnings for what is missing."""
    result = ExtractedArticle()
    text = decode_html(html)
    if len(text) >= MAX_CHARS:
        result.warnings.append(f"truncated: page cut at {MAX_CHARS} characters")
    page = _parse(text, url)
    spec = profile.article
    methods = result.methods

    # The recommended block is a source of links, never of any field: read the links, then take it out.
    # The tree is this call's own (parsed above), so the block is dropped in place, not from a copy.
    blocks = _recommended_blocks(page, profile)
    result.recommended_links = _links(blocks, url, profile)
    for block in blocks:
        _drop(block)

    title, css = _first(page, spec["title"])
    if title:
        if len(title) <= MAX_LINE_FOR_REGEX:
            title = profile.title_suffix_re.sub("", title).strip() or title
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
        _drop_all(body_el, spec.get("body_exclude", []))
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
        _drop_all(generic_page, spec.get("page_exclude", []) + spec.get("body_exclude", []) + fields_css)
        generic_title, generic_lines = _generic(generic_page, url, not result.title, result.warnings)
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
    views, css = _first(page, spec.get("views", []))
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
    raw, css = _first(page, profile.article["date"])
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
    name, css = _first(page, profile.article.get("category", []))
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


def parse_list_page(html: str | bytes, url: str, profile: SiteProfile) -> ListPage:
    """Article URLs of a category list page, in page order, each once (by the article they name)."""
    page = _parse(decode_html(html), url)
    entries = select(page, profile.list["entry"])
    urls: list[str] = []
    seen: set[str] = set()

    def add(href: str) -> None:
        absolute = _article_url(href, url, profile)
        if absolute:
            key = profile.article_ref(absolute).item_id
            if key not in seen:
                seen.add(key)
                urls.append(absolute)

    for entry in entries:
        if len(urls) >= MAX_LIST_URLS:
            break
        for href in select_values(entry, profile.list["link"])[:5]:
            add(href)
    if urls:
        return ListPage(article_urls=urls, method="profile", entries=len(entries))
    for href in select_values(page, profile.list["fallback_link"]):
        if len(urls) >= MAX_LIST_URLS:
            break
        add(href)
    if urls:
        log.info("list page %s: the profile's entry selector found no links; fallback found %d", url, len(urls))
    return ListPage(article_urls=urls, method="fallback", entries=len(entries))
