"""`newswatch probe [URL]`: check the site profile against the live site, field by field.

Fetches one list page (`<site_url>/<first category>?page=1`) and one article (the URL given, else the
newest article of that list page), runs the same extraction the spider runs, and prints every field with
the method that found it. Exit 0 when the profile itself found the title, the body and the date; exit 1
when a page could not be fetched or the profile missed (the generic fallback was needed, or nothing
found the field) — the verdict line says which, so a user knows whether to fix the site profile
(`crawler/sites/daydaynews.toml`) or the address, network or server: selectors are blamed only when a
page arrived and the profile missed on it; a DNS failure, a refused connection or a timeout is named as
such.

A plain HTTP client on purpose: no Scrapy engine, no Redis, no robots.txt machinery — one request per page,
as a person with curl would make. It honours `http_proxy`/`https_proxy` (urllib's default), and reads the
settings `site_url`, `categories`, `download_timeout`, `max_download_size`, `user_agent` and `topics`.
"""

from __future__ import annotations

import logging
import socket
import unicodedata
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from crawler.extract import ExtractedArticle, extract_article
from crawler.listing import parse_list_page
from crawler.sites import SiteProfile, load_profile
from crawler.topic import load_topic

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED = 0, 1
VALUE_WIDTH = 64
# Without a URL: articles of the list page tried until one has any text (the newest may be a video page).
MAX_ARTICLES_TRIED = 3
# The fields the verdict rests on: without them an item is not worth queueing.
REQUIRED = ("title", "body", "published_at")


@dataclass
class Fetched:
    url: str
    status: int | None
    body: bytes
    error: str | None


def fetch(url: str, *, timeout: float, user_agent: str, max_bytes: int) -> Fetched:
    """One GET. Never raises: a failure comes back as `error`, in words a user can act on."""
    request = urllib.request.Request(url, headers={"User-Agent": user_agent, "Accept": "text/html,*/*;q=0.8"})
    try:
        # build_opener() includes ProxyHandler(), which reads http_proxy/https_proxy/no_proxy.
        with urllib.request.build_opener().open(request, timeout=timeout) as response:
            body = response.read(max_bytes + 1)
            if len(body) > max_bytes:
                return Fetched(url, response.status, b"", f"larger than {max_bytes} bytes")
            return Fetched(response.geturl(), response.status, body, None)
    except urllib.error.HTTPError as exc:
        return Fetched(url, exc.code, b"", f"HTTP {exc.code} {exc.reason}")
    except urllib.error.URLError as exc:
        return Fetched(url, None, b"", network_failure(url, exc.reason, timeout))
    except (OSError, ValueError) as exc:  # a timeout while reading, connection reset, bad status line
        return Fetched(url, None, b"", network_failure(url, exc, timeout))


def network_failure(url: str, reason, timeout: float) -> str:
    """What went wrong on the way to the server, naming the host: DNS, refused, timed out, or else."""
    parts = urlsplit(url)
    try:
        where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    except ValueError:
        where = parts.netloc
    if isinstance(reason, socket.gaierror):
        return f"DNS lookup of {parts.hostname} failed ({reason.strerror or reason})"
    if isinstance(reason, ConnectionRefusedError):
        return f"connection refused by {where} (nothing listens there)"
    if isinstance(reason, TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
        return f"no answer within {timeout:g} s from {where}"
    if isinstance(reason, OSError):
        return f"cannot connect to {where}: {reason.strerror or reason}"
    return f"cannot connect to {where}: {reason}"


def _short(value, width: int = VALUE_WIDTH) -> str:
    """The value on one line, cut to `width` terminal columns (a CJK character takes two)."""
    if value is None or value == "" or value == []:
        return "-"
    out, used = [], 0
    for char in str(value).replace("\n", " ⏎ "):
        cost = 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
        if used + cost > width - 1:
            return "".join(out) + "…"
        out.append(char)
        used += cost
    return "".join(out)


def _row(name: str, method: str, value) -> None:
    print(f"  {name:<14} {method:<40} {_short(value)}")


def _print_article(article: ExtractedArticle, topic) -> None:
    m = article.methods
    _row("title", m.get("title", "missing"), article.title)
    _row("published_at", m.get("published_at", "missing"), article.published_at)
    _row("category", m.get("category", "missing"), article.category)
    _row("views", m.get("views", "missing"), article.views)
    _row("summary", m.get("summary", "missing"), article.summary)
    body = f"{len(article.paragraphs)} paragraphs, {len(article.body)} chars: {article.body}"
    _row("body", m.get("body", "missing"), body if article.paragraphs else None)
    _row("images", m.get("images", "missing"), f"{len(article.images)}: {', '.join(article.images)}"
         if article.images else None)
    _row("recommended", "links", f"{len(article.recommended_links)}: {', '.join(article.recommended_links)}"
         if article.recommended_links else None)
    verdict = topic.match(article.title or "", "\n".join(filter(None, [article.summary, article.body])))
    _row("topic", verdict.name, f"{'on' if verdict.on_topic else 'off'} topic, score {verdict.score}"
         f" (threshold {topic.threshold}); matched {', '.join(verdict.matched[:8]) or 'nothing'}")
    _row("warnings", "", ", ".join(article.warnings) or None)


def probe_command(settings, url: str | None) -> int:
    """Print what the site profile extracts from one list page and one article; see the module doc."""
    profile: SiteProfile = load_profile()
    topic = load_topic(settings.topics)
    get = dict(timeout=settings.download_timeout, user_agent=settings.effective_user_agent,
               max_bytes=settings.max_download_size)
    not_fetched: list[str] = []  # pages that never arrived: nothing about the profile follows from them
    missed: list[str] = []  # what the profile missed on a page that did arrive

    list_url = profile.list_url(settings.site_url, settings.categories[0], 1)
    print(f"list page  {list_url}")
    page = fetch(list_url, **get)
    candidates: list[str] = []
    if page.error:
        print(f"  could not fetch: {page.error}")
        not_fetched.append(f"list page not fetched ({page.error})")
    else:
        listing = parse_list_page(page.body, page.url, profile)
        candidates = listing.article_urls
        entry_css, link_css = profile.list["entry"], profile.list["link"]
        method = (f"profile:{entry_css} → {link_css}" if listing.method == "profile"
                  else f"fallback:{profile.list['fallback_link']}")
        print(f"  {'status':<14} {'':<40} HTTP {page.status}, {len(page.body)} bytes")
        print(f"  {'entries':<14} {'profile:' + entry_css:<40} {listing.entries}")
        print(f"  {'article links':<14} {method:<40} {_short(f'{len(candidates)}: ' + ', '.join(candidates))}")
        if listing.method != "profile":
            missed.append(f"list page: the profile's `{entry_css}` / `{link_css}` found no article links")

    targets = [url] if url else candidates[:MAX_ARTICLES_TRIED]
    if not targets and not page.error:
        print("article    (none: no URL given and the list page gave no article links)")
        missed.append("no article to probe")
    article = None
    for n, target in enumerate(targets):
        print(f"article    {target}")
        fetched = fetch(target, **get)
        if fetched.error:
            print(f"  could not fetch: {fetched.error}")
            not_fetched.append(f"article not fetched ({fetched.error})")
            break
        article = extract_article(fetched.body, fetched.url, profile)
        if article.paragraphs or url or n == len(targets) - 1:
            break
        # A page with no text by any method (a video page, say) says nothing about the selectors.
        print(f"  no text by any method (warnings: {', '.join(article.warnings)}); trying the next article")
        article = None
    if article is not None:
        _print_article(article, topic)
        for name in REQUIRED:
            method = article.methods.get(name, "missing")
            if not method.startswith("profile:"):
                how = "found only by the generic fallback" if method.startswith("generic:") else "not found"
                missed.append(f"{name} {how} ({method})")

    if not_fetched or missed:
        print("verdict    FAIL: " + "; ".join(not_fetched + missed))
        if missed:
            print("           the site profile missed: fix its selectors in crawler/sites/daydaynews.toml "
                  "(docs/extraction-and-topics.md: fixing the selectors after a redesign)")
        else:
            print(f"           a network or server failure, not the site profile: check NEWSWATCH_SITE_URL "
                  f"({settings.site_url}), the network and any proxy settings, then probe again")
        return EXIT_FAILED
    print("verdict    OK: title, body and date found by the site profile")
    return EXIT_OK
