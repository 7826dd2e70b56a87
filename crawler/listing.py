"""A category list page of the site: its article URLs, in page order, each once. A pure function.

The profile's entry and link selectors find the links; where they find none (a redesign), any link on
the page that looks like an article URL does, and `method` says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from crawler.markup import decode_html, parse, select, select_values
from crawler.sites import SiteProfile

log = logging.getLogger(__name__)

# List pages hold tens of entries; an enormous one is read this far and no further.
MAX_LIST_URLS = 2_000


@dataclass
class ListPage:
    article_urls: list[str]
    method: str  # "profile" or "fallback"
    entries: int


def article_url(href: str, base: str, profile: SiteProfile) -> str | None:
    """The absolute URL of an article link, or None for anything else (or anything malformed)."""
    try:
        absolute = urljoin(base, href.strip()[:2000])
        if urlsplit(absolute).scheme not in ("http", "https"):
            return None
        return absolute if profile.article_ref(absolute) else None
    except ValueError:  # e.g. an invalid IPv6 host in a hostile href
        return None


def parse_list_page(html: str | bytes, url: str, profile: SiteProfile,
                    content_type: str | None = None) -> ListPage:
    """Article URLs of a category list page, in page order, each once (by the article they name)."""
    page = parse(decode_html(html, content_type), url)
    entries = select(page, profile.list["entry"])
    urls: list[str] = []
    seen: set[str] = set()

    def add(href: str) -> None:
        absolute = article_url(href, url, profile)
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
