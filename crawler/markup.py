"""An HTML page as text and as a tree: decoding, parsing, CSS selection, text lines. Pure functions.

The input is hostile by assumption: any bytes, any size. Nothing here raises on page content and nothing
runs in more than roughly linear time: the page is cut at `MAX_CHARS` and tree walks are iterative.
Decoding follows the browser's order (w3lib's `html_to_unicode`, as Scrapy's own `response.text`): a
byte-order mark, then the response's Content-Type charset, then a `<meta charset>`, then UTF-8; bytes that
do not decode are replaced, never an error.
"""

from __future__ import annotations

import codecs
import copy
import re
from functools import lru_cache

from lxml import etree
from parsel import Selector
from parsel.csstranslator import css2xpath
from w3lib.encoding import html_to_unicode

# A real article page is well under 1 MB; anything past this is cut (and a warning says so).
MAX_CHARS = 2_000_000

BLOCK_TAGS = frozenset(
    "p div br li ul ol h1 h2 h3 h4 h5 h6 section article header footer blockquote figure figcaption "
    "table tr td th dd dt dl pre hr main aside nav".split())
# Characters lxml refuses (and that no page needs): C0 controls except tab, newline, carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u3000]+")
_WIDE = ("utf-16", "utf-32")


def decode_html(html: str | bytes, content_type: str | None = None) -> str:
    """Text of a page from whatever arrived (`content_type`: the response's Content-Type header)."""
    if isinstance(html, str):
        # Lone surrogates cannot be encoded for lxml; replace them.
        text = html.encode("utf-8", "replace").decode("utf-8")
    else:
        data = bytes(html[: MAX_CHARS * 4])
        encoding, text = html_to_unicode(content_type, data)
        if (encoding.replace("_", "-").startswith(_WIDE) and not data.startswith(
                (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE))
                and b"\x00" not in data[:256]):
            # A UTF-16/32 label on bytes with no NULs (a header or meta tag read as ASCII) cannot be right.
            text = data.decode("utf-8", "replace")
    return _CONTROL.sub("", text[:MAX_CHARS])


def parse(text: str, url: str):
    """The page's lxml root, parsed as parsel parses it (lenient HTML, huge trees allowed)."""
    return Selector(text=text or "<html></html>", base_url=url).root


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


def first(root, selectors: list[str]) -> tuple[str | None, str | None]:
    """The first non-empty value any of the selectors finds, and that selector."""
    for css in selectors:
        for value in select_values(root, css):
            value = clean_space(value)
            if value:
                return value, css
    return None, None


def clean_space(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def drop(element) -> None:
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


def drop_all(root, selectors: list[str]) -> None:
    for css in selectors:
        for found in select(root, css):
            if found is not root and isinstance(found, etree._Element):
                drop(found)


def text_lines(root, *, in_place: bool = False) -> list[str]:
    """The element's text as lines, one per block element (iterative: deep trees do not recurse).
    The tree is marked up on the way; `in_place` when the caller's tree is a private copy already."""
    if not in_place:
        root = copy.deepcopy(root)
    for node in list(root.iter(etree.Comment, etree.ProcessingInstruction)):
        drop(node)
    for node in root.iter():
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag.lower() in BLOCK_TAGS:
            node.tail = "\n" + (node.tail or "")
            if tag.lower() != "br":
                node.text = "\n" + (node.text or "")
    lines = (clean_space(line) for line in "".join(root.itertext()).split("\n"))
    return [line for line in lines if line]
