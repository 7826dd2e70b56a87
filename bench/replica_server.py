"""The site replica (tests/replica.py) served from its own process, for the benchmarks.

Why a separate process: the replica's ThreadingHTTPServer is Python; in the benchmark's process it would
share a GIL with whatever else runs there. Why pre-rendered pages: `Replica.render_article` sorts every
article for each page's recommended block, which at 2,000-10,000 articles costs more than the crawl under
test. `FastReplica` renders each page once per content version (after any change, on first request or in
`prerender()`) and answers from memory, so the server's own cost per request is routing, the ETag check
and the socket write. Request counts and the (method, path, status, bytes) log are kept as in `Replica`.

    server = ReplicaServer(build=("crawl", {"articles": 2000, "per_page": 40}))
    server.url; server.call("reset_counts"); server.call("log"); server.stop()
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.replica import Article, Replica, corpus, corpus_article, on_topic_texts, topic_article  # noqa: E402

BASE_ID = 5_000_000


class FastReplica(Replica):
    """A Replica whose pages are rendered once per content version and then served from memory."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pages: dict[str, tuple[int, str, dict]] = {}
        self._pages_version = -1
        self._order: dict[str, list[Article]] = {}

    def newest_first(self, category: str) -> list[Article]:
        if self._pages_version != self.version:
            self._order.clear()
        if category not in self._order:
            self._order[category] = super().newest_first(category)
        return self._order[category]

    def _route(self, h):
        if self._pages_version != self.version:
            self._pages.clear()
            self._order.clear()
            self._pages_version = self.version
        cached = self._pages.get(h.path)
        if cached is None:
            cached = self._pages[h.path] = super()._route(h)
        return cached

    def prerender(self, max_pages: int = 50) -> int:
        paths = ["/robots.txt"]
        for category in sorted({a.category for a in self.articles.values()}):
            pages = max(1, -(-len(self.newest_first(category)) // self.per_page))
            paths += [f"/{category}?page={n}" for n in range(1, min(pages, max_pages) + 2)]
        paths += [a.path for a in self.articles.values()]
        for path in paths:
            self._route(SimpleNamespace(path=path))
        return len(paths)


# --- content ---------------------------------------------------------------------------------------

_CONVERTED: dict[int, Article] = {}
DOCS = 600  # documents in tests/data/pd1998-dev.jsonl: article n is built on document n mod DOCS


def fresh_number(n: int, *, after: int, block: int) -> int:
    """The number of the n-th article added to a running replica whose articles 0 .. after-1 are already on
    the site. Its document is none of theirs nor another added article's, so the reprint filter has no
    reason to drop it: numbers chosen without this (20_000 + 100 * seed + n) fell on the baseline's own
    documents for seed 4, and 5 of 12 new articles were rightly dropped as reprints. `block` keeps the
    numbers, and so the ids, of different series apart."""
    if not 0 <= n < DOCS - after:
        raise ValueError(f"article {n} after {after}: only {DOCS - after} documents are left unused")
    return DOCS * block + after + n


def bench_article(n: int, docs: list[dict], fixtures: list[dict], on_topic: bool) -> Article:
    """Article number n: a People's Daily document (doc n mod 600); when on topic, the body is prefixed
    with an on-topic fixture's title, lead and first paragraph so the topic filter keeps it."""
    doc = docs[n % len(docs)]
    key = id(doc)
    if key not in _CONVERTED:  # the Traditional conversion is the slow part: once per document
        _CONVERTED[key] = corpus_article(doc, 0)
    base = _CONVERTED[key]
    article = Article(id=BASE_ID + n, title=base.title, paragraphs=list(base.paragraphs),
                      published=f"2025年03月{1 + n // 2000 % 28:02d}日{n // 60 % 24:02d}:{n % 60:02d}:00",
                      views=100 + n % 900)
    if on_topic:
        fx = topic_article(fixtures[n % len(fixtures)], BASE_ID + n)
        article.title = (fx.title + " " + article.title)[:60]
        article.lead = fx.lead
        article.paragraphs = [fx.paragraphs[0], *article.paragraphs]
    return article


def build_crawl_site(articles: int, per_page: int, on_topic_every: int = 2) -> FastReplica:
    replica = FastReplica(per_page=per_page)
    docs, fixtures = corpus(), on_topic_texts()
    replica.add(*(bench_article(n, docs, fixtures, on_topic_every and n % on_topic_every == 0)
                  for n in range(articles)))
    return replica


BUILDERS = {"crawl": build_crawl_site}


def _serve(build, conn) -> None:
    name, kwargs = build
    replica = BUILDERS[name](**kwargs)
    started = time.perf_counter()
    pages = replica.prerender()
    replica.start()
    conn.send({"url": replica.url, "pid": os.getpid(), "prerendered": pages,
               "prerender_s": time.perf_counter() - started})
    docs, fixtures = None, None
    while True:
        command, args = conn.recv()
        if command == "stop":
            replica.stop()
            conn.send(None)
            return
        if command == "log":
            with replica._lock:
                conn.send(list(replica.log))
        elif command == "reset_counts":
            replica.reset_counts()
            conn.send(None)
        elif command == "article_requests":
            with replica._lock:
                conn.send(dict(replica.requests))
        elif command == "add":  # add(n, on_topic): article number n of bench_article, served from now on
            docs = docs or corpus()
            fixtures = fixtures or on_topic_texts()
            n, on_topic = args
            article = bench_article(n, docs, fixtures, on_topic)
            replica.add(article)
            replica.prerender()
            conn.send((article.id, time.time()))
        elif command == "add_article":  # an Article object, pickled
            replica.add(args)
            replica.prerender()
            conn.send((args.id, time.time()))
        else:
            conn.send(ValueError(f"unknown command {command}"))


class ReplicaServer:
    """A FastReplica in a child process; `call(command, args)` talks to it over a pipe."""

    def __init__(self, build: tuple[str, dict]):
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(build, child), daemon=True)
        self.process.start()
        info = self._conn.recv()
        self.url, self.pid = info["url"], info["pid"]
        self.prerendered, self.prerender_s = info["prerendered"], info["prerender_s"]

    def call(self, command: str, args=None):
        self._conn.send((command, args))
        return self._conn.recv()

    def stop(self) -> None:
        try:
            self.call("stop")
        except (BrokenPipeError, EOFError):
            pass
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()

    def __enter__(self) -> ReplicaServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
