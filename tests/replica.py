"""A replica of 天天要聞 on loopback: list pages and article pages in the structure of SOURCE_SITE.md.

Filled with real text: the seed article (`tests/data/seed_3930612.txt`), the on-topic fixtures (tests/fixtures),
and People's Daily 1998 documents (`tests/data/pd1998-dev.jsonl`) converted to Traditional script as the
site does. It counts every request, answers conditional requests on list pages (ETag and Last-Modified),
serves robots.txt, and lets a test install a fault on any path (`replica.faults[path] = callable`).

Used by the tests and the benchmarks alike; it never touches the network beyond 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import html
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from tests.loopback import LoopbackServer, respond

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"  # real text, with where it came from: tests/data/README.md
SEED = DATA / "seed_3930612.txt"
CORPUS = DATA / "pd1998-dev.jsonl"
ON_TOPIC = Path(__file__).resolve().parent / "fixtures" / "on_topic.json"
SEED_ID = 3930612
SITE_NAME = "天天要聞"


@dataclass
class Article:
    """One article page of the replica. `layout` picks the markup: the site's, a foreign one, or no body."""

    id: int
    title: str
    paragraphs: list[str]
    lead: str | None = None
    category: str = "international"
    category_name: str = "國際"
    published: str | None = "2025年02月10日11:20:38"  # as the site prints it, or None for no date
    views: int = 1000
    images: list[tuple[str, str]] = field(default_factory=list)  # (original image URL, caption)
    layout: str = "site"  # "site" | "foreign" (profile selectors miss) | "nobody" | "raw"
    raw_html: str | None = None  # for layout "raw": served as is

    @property
    def path(self) -> str:
        return f"/{self.category}/{self.id}.html"


def _t(text: str) -> str:
    """Simplified -> Traditional, the way the site converts (plain s2t, which keeps forms like 家庭里)."""
    import opencc

    global _S2T
    try:
        conv = _S2T
    except NameError:
        conv = _S2T = opencc.OpenCC("s2t")
    return conv.convert(text)


class Replica(LoopbackServer):
    """The site replica's content and HTTP server. Use as a context manager, or start()/stop()."""

    thread_name = "replica"

    def __init__(self, per_page: int = 10, recommended: int = 5):
        super().__init__()
        self.per_page = per_page
        self.recommended = recommended
        self.articles: dict[int, Article] = {}
        self.robots_txt = "User-agent: *\nDisallow: /private/\n"
        self.robots_headers: dict[str, str] = {}  # extra headers of robots.txt (e.g. Cache-Control)
        self.arrivals: list[tuple[float, str]] = []  # (time.monotonic(), path) of every request
        self.requests: Counter = Counter()       # path (with query) -> count
        self.log: list[tuple[str, str, int, int]] = []  # (method, path, status, bytes)
        self.faults: dict[str, Callable[[BaseHTTPRequestHandler], bool]] = {}
        self.conditional = True
        self.version = 0  # bumped on every change: list pages' ETag
        self._lock = threading.Lock()

    # -- content ----------------------------------------------------------------------------------
    def add(self, *articles: Article) -> None:
        with self._lock:
            for article in articles:
                self.articles[article.id] = article
            self.version += 1

    def remove(self, article_id: int) -> None:
        with self._lock:
            self.articles.pop(article_id, None)
            self.version += 1

    def newest_first(self, category: str) -> list[Article]:
        return sorted((a for a in self.articles.values() if a.category == category),
                      key=lambda a: a.id, reverse=True)

    def article_requests(self) -> int:
        return sum(n for path, n in self.requests.items() if path.endswith(".html"))

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.log.clear()
            self.arrivals.clear()

    # -- rendering --------------------------------------------------------------------------------
    def render_list(self, category: str, page: int) -> str | None:
        items = self.newest_first(category)
        start = (page - 1) * self.per_page
        if page < 1 or (start >= len(items) and page > 1):
            return None
        entries = []
        for a in items[start:start + self.per_page]:
            entries.append(
                f'<article class="post"><h2 class="entry-title"><a href="{a.path}">{html.escape(a.title)}</a></h2>'
                f'<div class="entry-summary">{html.escape((a.lead or a.paragraphs[0] if a.paragraphs else "")[:60])}</div>'
                f'<span class="my-date">{a.published or ""}</span></article>')
        pages = max(1, -(-len(items) // self.per_page))
        nav = " ".join(f'<a href="/{category}?page={n}">{n}</a>' for n in range(1, min(pages, 50) + 1))
        return _page(f"{self._cat_name(category)} - {SITE_NAME}",
                     f'<main class="list">{"".join(entries)}</main><nav class="pagination">{nav}</nav>')

    def _cat_name(self, category: str) -> str:
        for a in self.articles.values():
            if a.category == category:
                return a.category_name
        return category

    def render_article(self, a: Article) -> str:
        if a.layout == "raw":
            return a.raw_html or ""
        recommended = [r for r in self.newest_first(a.category) if r.id != a.id][: self.recommended]
        rec_html = "".join(
            f'<li><a href="{r.path}"><img src="https://s167.daydaynews.cc/?url=x" alt="{html.escape(r.title)} - {SITE_NAME}">'
            f'<h4>{html.escape(r.title)}</h4></a><p>{html.escape((r.paragraphs[0] if r.paragraphs else "")[:90])}</p></li>'
            for r in recommended)
        rec_block = f'<div class="related"><h3>{html.escape(a.category_name)}分類資訊推薦</h3><ul>{rec_html}</ul></div>'
        body_parts = []
        if a.lead and a.layout == "site":
            body_parts.append(f'<div class="abstract">{html.escape(a.lead)}</div>')
        images = list(a.images)
        for n, para in enumerate(a.paragraphs):
            body_parts.append(f"<p>{html.escape(para)}</p>")
            if images and n % 2 == 0:
                src, caption = images.pop(0)
                alt = f"{a.title} - {SITE_NAME}({caption})"
                body_parts.append(
                    f'<p class="pgc-img"><img src="https://s167.daydaynews.cc/?url={quote(src, safe="")}" '
                    f'alt="{html.escape(alt)}"></p><p class="pgc-img-caption">{html.escape(alt)}</p>')
        body_parts.append('<div class="favorite-box">收藏 分享</div>')
        meta = (f'<div class="entry-meta"><span class="my-date">{a.published or ""}</span> '
                f'<span class="my-cat"><a href="/{a.category}">{html.escape(a.category_name)}</a></span> '
                f'<span class="my-views">{a.views}</span></div>')
        if a.layout == "site":
            content = (f'<div class="single-post"><h1 class="entry-title">{html.escape(a.title)}</h1>{meta}'
                       f'<div class="single-content">{"".join(body_parts)}</div>{rec_block}</div>')
        elif a.layout == "nobody":
            content = (f'<div class="single-post"><h1 class="entry-title">{html.escape(a.title)}</h1>{meta}'
                       f'<div class="single-content"><div class="favorite-box">收藏</div></div>{rec_block}</div>')
        else:  # "foreign": a redesign the profile does not know; only a generic extractor finds the text
            paras = "".join(f"<p>{html.escape(p)}</p>" for p in ([a.lead] if a.lead else []) + a.paragraphs)
            content = (f'<section class="news-detail"><header><h1 class="headline">{html.escape(a.title)}</h1>'
                       f'<div class="info">{a.published or ""} {html.escape(a.category_name)}</div></header>'
                       f'<article class="news-text">{paras}</article></section>{rec_block}')
        return _page(f"{a.title} - {SITE_NAME}", content)

    # -- HTTP -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        self._handle(h, head=method == "HEAD")

    def _handle(self, h: BaseHTTPRequestHandler, head: bool = False) -> None:
        with self._lock:
            self.requests[h.path] += 1
            self.arrivals.append((time.monotonic(), h.path))
        fault = self.faults.get(h.path) or self.faults.get(urlsplit(h.path).path)
        if fault is not None and fault(h):
            with self._lock:
                self.log.append((h.command, h.path, -1, 0))
            return
        status, body, headers = self._route(h)
        data = body.encode("utf-8")
        if status == 200 and "ETag" in headers and self.conditional:
            if h.headers.get("If-None-Match") == headers["ETag"]:
                status, data = 304, b""
        respond(h, status, data, headers, head=head)
        with self._lock:
            self.log.append((h.command, h.path, status, len(data)))

    def _route(self, h: BaseHTTPRequestHandler) -> tuple[int, str, dict]:
        parts = urlsplit(h.path)
        html_type = {"Content-Type": "text/html; charset=utf-8"}
        if parts.path == "/robots.txt":
            # with an ETag (answered 304 when it matches, as list pages are), so a refresh can be conditional
            etag = '"' + hashlib.sha1(self.robots_txt.encode()).hexdigest()[:16] + '"'
            return 200, self.robots_txt, {"Content-Type": "text/plain", "ETag": etag, **self.robots_headers}
        segments = [s for s in parts.path.split("/") if s]
        if segments and segments[0] in ("zh-tw", "zh-hant", "zh-cn"):
            segments = segments[1:]
        if len(segments) == 1:  # a category list page
            try:
                page = int(parse_qs(parts.query).get("page", ["1"])[0])
            except ValueError:
                page = 1
            body = self.render_list(segments[0], page)
            if body is None:
                return 404, _page("404", "<p>not found</p>"), html_type
            etag = '"' + hashlib.sha1(f"{self.version}:{segments[0]}:{page}".encode()).hexdigest()[:16] + '"'
            headers = dict(html_type)
            if self.conditional:
                headers["ETag"] = etag
                headers["Last-Modified"] = formatdate(usegmt=True)
            return 200, body, headers
        if len(segments) == 2 and segments[1].endswith(".html"):
            try:
                article_id = int(segments[1][:-5])
            except ValueError:
                return 404, _page("404", "<p>not found</p>"), html_type
            article = self.articles.get(article_id)
            if article is None or article.category != segments[0]:
                return 404, _page("404", "<p>not found</p>"), html_type
            return 200, self.render_article(article), html_type
        return 404, _page("404", "<p>not found</p>"), html_type


def _page(title: str, content: str) -> str:
    return (f'<!DOCTYPE html><html lang="zh-Hant"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'</head><body><header class="site-header"><a href="/">{SITE_NAME}</a> '
            f'<nav><a href="/international">國際</a> <a href="/technology">科技</a> <a href="/en/international">English</a>'
            f'</nav></header>{content}<footer class="site-footer">© {SITE_NAME} 版權所有</footer></body></html>')


# --- real content ----------------------------------------------------------------------------------

def seed_article() -> Article:
    """The seed page, rebuilt from its text: title, meta line, lead, paragraphs, captions as images."""
    lines = [line.strip() for line in SEED.read_text(encoding="utf-8").splitlines() if line.strip()]
    title, meta = lines[0], lines[1]
    date, _cat, views = meta.split()[0], meta.split()[1], int(meta.split()[2])
    body, captions = [], []
    for line in lines[2:]:
        if line == "國際分類資訊推薦":
            break
        if line.startswith(title + " - 天天要聞("):
            captions.append(line[len(title) + len(" - 天天要聞("):-1])
        else:
            body.append(line)
    lead, paragraphs = body[0], body[1:]
    images = [(f"https://p3-sign.toutiaoimg.com/tos-cn-i/{n}.jpeg", c) for n, c in enumerate(captions)]
    return Article(id=SEED_ID, title=title, lead=lead, paragraphs=paragraphs, published=date,
                   views=views, images=images)


def seed_recommended_titles() -> list[str]:
    """Titles of the seed page's recommended block: each is off topic."""
    lines = [line.strip() for line in SEED.read_text(encoding="utf-8").splitlines() if line.strip()]
    block = lines[lines.index("國際分類資訊推薦") + 1:]
    return [line for line in block if not line.endswith(" - 天天要聞") and len(line) < 80
            and (line + " - 天天要聞") in block]


def corpus(limit: int | None = None) -> list[dict]:
    out = []
    with CORPUS.open(encoding="utf-8") as fh:
        for line in fh:
            out.append(json.loads(line))
            if limit and len(out) >= limit:
                break
    return out


def on_topic_texts() -> list[dict]:
    """Hand-written fixtures on US–Russia talks, in Simplified script (the site serves them converted)."""
    return json.loads(ON_TOPIC.read_text(encoding="utf-8"))


def corpus_article(doc: dict, article_id: int, published: str = "2025年02月11日09:00:00") -> Article:
    """A People's Daily document as a site article: first line the title, the rest paragraphs, Traditional."""
    lines = [line.strip() for line in doc["text"].split("\n") if line.strip()]
    title = _t(lines[0])[:60]
    paragraphs = [_t(p) for p in lines[1:]] or [_t(lines[0])]
    return Article(id=article_id, title=title, paragraphs=paragraphs, published=published, views=100 + article_id % 900)


def topic_article(fixture: dict, article_id: int, published: str = "2025年02月18日20:15:00") -> Article:
    return Article(id=article_id, title=_t(fixture["title"]), lead=_t(fixture["lead"]),
                   paragraphs=[_t(p) for p in fixture["paragraphs"]], published=published, views=2000 + article_id % 5000,
                   images=[("https://p3-sign.toutiaoimg.com/x/1.jpeg", _t(fixture["title"])[:12])])


def simplified_reprint(article: Article, article_id: int, fixture: dict | None = None) -> Article:
    """Another outlet's reprint in Simplified script with its own boilerplate: a near-duplicate to drop."""
    import opencc

    t2s = opencc.OpenCC("t2s")
    lead = fixture["lead"] if fixture else t2s.convert(article.lead or "")
    paras = fixture["paragraphs"] if fixture else [t2s.convert(p) for p in article.paragraphs]
    return Article(
        id=article_id, title=(fixture["title"] if fixture else t2s.convert(article.title)) + "（转载）",
        lead=None,
        paragraphs=["来源：环球视野网 编辑：王小明", lead, *paras, "责任编辑：李华 本文转载自网络，如有侵权请联系删除。"],
        published="2025年02月12日08:30:00", views=55)


def standard_site(per_page: int = 10, off_topic: int = 12, reprint: bool = True) -> tuple[Replica, dict]:
    """The replica the end-to-end tests start from, and a map of what each article is expected to be.

    expected: {"on_topic": [ids], "off_topic": [ids], "reprint": [ids], "foreign": [ids], "nobody": [ids]}
    """
    replica = Replica(per_page=per_page)
    fixtures = on_topic_texts()
    expected = {"on_topic": [], "off_topic": [], "reprint": [], "foreign": [], "nobody": []}
    seed = seed_article()
    replica.add(seed)
    expected["on_topic"].append(seed.id)
    riyadh = topic_article(fixtures[0], SEED_ID + 10)
    phone = topic_article(fixtures[1], SEED_ID + 5, published="2025年02月13日07:40:12")
    replica.add(riyadh, phone)
    expected["on_topic"] += [riyadh.id, phone.id]
    if reprint:
        copy = simplified_reprint(seed, SEED_ID + 12)
        replica.add(copy)
        expected["reprint"].append(copy.id)
    for n, doc in enumerate(corpus(limit=off_topic + 40)[40:40 + off_topic]):
        article = corpus_article(doc, SEED_ID + 20 + n)
        replica.add(article)
        expected["off_topic"].append(article.id)
    foreign = topic_article(fixtures[3], SEED_ID + 40, published="2025年03月25日10:00:00")
    foreign.layout = "foreign"
    replica.add(foreign)
    expected["foreign"].append(foreign.id)
    nobody = Article(id=SEED_ID + 41, title="美俄會談最新消息（視頻）", paragraphs=[], published="2025年03月25日11:00:00")
    nobody.layout = "nobody"
    replica.add(nobody)
    expected["nobody"].append(nobody.id)
    return replica, expected


def fresh_article() -> Article:
    """An on-topic article the standard site does not have yet: what a later revisit should find."""
    return topic_article(on_topic_texts()[2], SEED_ID + 88, published="2025年02月20日10:00:00")


def serve_forever(port: int = 8000, publish_after: float | None = None) -> None:
    """Serve the standard replica until interrupted: `python -m tests.replica [--port N] [--publish-after S]`."""
    replica, _ = standard_site()
    replica.start(port)
    print(f"replica of the site on {replica.url}  (list page: {replica.url}/international?page=1; Ctrl-C stops)",
          flush=True)
    stop = threading.Event()
    try:
        if publish_after is not None and not stop.wait(publish_after):
            article = fresh_article()
            replica.add(article)
            print(f"published a new article: {replica.url}{article.path}", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        replica.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.replica",
                                     description="Serve a replica of 天天要聞 on 127.0.0.1 (no network needed).")
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000; 0 picks a free one)")
    parser.add_argument("--publish-after", type=float, metavar="SECONDS",
                        help="publish one new on-topic article this many seconds after starting")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port: expected 0-65535, got {args.port}")
    if args.publish_after is not None and not args.publish_after >= 0:
        parser.error(f"--publish-after: expected a number of seconds >= 0, got {args.publish_after}")
    try:
        serve_forever(args.port, args.publish_after)
    except OSError as exc:
        print(f"python -m tests.replica: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
