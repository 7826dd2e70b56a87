"""Site profiles: the URL patterns and selectors of a site, as data (`<name>.toml` beside this file).

The profile's regular expressions run on page text and on URLs taken from pages, which are hostile input.
They are compiled with RE2 (google-re2), whose matching time is linear in the input whatever the pattern:
a profile edited after a redesign cannot bring back catastrophic backtracking (issue 12). RE2 has no
backreferences or lookaround; a pattern using them is refused when the profile loads. RE2's whitespace and
digit classes are ASCII (the site writes its dates and separators in ASCII).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import re2

from newswatch.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

HERE = Path(__file__).parent


@dataclass(frozen=True)
class ArticleRef:
    """What the URL alone says about an article."""

    id: str           # the site's numeric id
    category: str     # the URL's category slug
    item_id: str      # the stable item id, e.g. daydaynews-3930612
    path: str         # canonical path, e.g. /international/3930612.html


class SiteProfile:
    """One site's profile. The spider and the extractor read every site-specific detail from here."""

    def __init__(self, data: dict):
        self.data = data
        self.name: str = data["name"]
        self.source: str = data["source"]
        self.lang: str = data["lang"]
        self.site_name: str = data["site_name"]
        urls = data["urls"]
        self.list_page_template: str = urls["list_page"]
        self.article_re = _compile(data, "urls", "article")
        self.canonical_template: str = urls["canonical"]
        self.excluded_prefixes: tuple[str, ...] = tuple(urls["excluded_prefixes"])
        self.item_id_template: str = urls["item_id"]
        self.list = data["list"]
        self.article = data["article"]
        self.categories: dict[str, str] = dict(data["categories"])
        self.date_re = _compile(data, "article", "date_pattern")
        self.caption_re = _compile(data, "article", "caption_pattern")
        self.title_suffix_re = _compile(data, "article", "title_suffix")
        self.recommended_line_re = _compile(data, "article", "recommended_line")
        self.furniture_markers: tuple[str, ...] = tuple(self.article["furniture_markers"])
        self._refs: dict[str, ArticleRef | None] = {}

    def list_url(self, site_url: str, category: str, page: int) -> str:
        return site_url + self.list_page_template.format(category=category, page=page)

    def article_ref(self, url_or_path: str) -> ArticleRef | None:
        """The article a URL names (language prefix, query and fragment folded), or None if it names none."""
        # A pass asks about each URL several times (list page, request, response, recommended links).
        try:
            return self._refs[url_or_path]
        except KeyError:
            pass
        if len(self._refs) > 50_000:
            self._refs.clear()
        ref = self._refs[url_or_path] = self._article_ref(url_or_path)
        return ref

    def _article_ref(self, url_or_path: str) -> ArticleRef | None:
        path = urlsplit(url_or_path).path or "/"
        if any(path.startswith(prefix) for prefix in self.excluded_prefixes):
            return None
        match = self.article_re.match(path)
        if not match:
            return None
        article_id, category = match.group("id"), match.group("category")
        return ArticleRef(
            id=article_id, category=category,
            item_id=self.item_id_template.format(id=article_id),
            path=self.canonical_template.format(category=category, id=article_id),
        )

    def canonical_url(self, site_url: str, url_or_path: str) -> str | None:
        ref = self.article_ref(url_or_path)
        return site_url + ref.path if ref else None

    def category_name(self, slug: str) -> str | None:
        return self.categories.get(slug)

    # -- site furniture: captions, the site's name after a title, the recommended block -----------------
    def is_furniture(self, line: str) -> bool:
        """An image caption line, or a line that ends with the site's name (a title copied into the body)."""
        return bool(self.caption_re.match(line) or self.title_suffix_re.search(line))

    def strip_title_suffix(self, title: str) -> str:
        return self.title_suffix_re.sub("", title).strip() or title

    def strip_furniture(self, text: str) -> str:
        """Text (lines) without caption lines, site-name suffixes and anything from the recommended block's
        header on, should the extractor have let any through: what the reprint detector reads."""
        if not any(marker in text for marker in self.furniture_markers):
            return text  # the usual case once the extractor has done its job
        kept = []
        for line in text.split("\n"):
            if self.recommended_line_re.match(line):
                break  # everything after the header is other articles
            if self.caption_re.match(line):
                continue
            kept.append(self.title_suffix_re.sub("", line).rstrip())
        return "\n".join(kept)


def _compile(data: dict, table: str, key: str):
    try:
        return re2.compile(data[table][key])
    except re2.error as exc:
        raise ConfigError(f"site profile {data.get('name')}: {table}.{key}",
                          f"expected a regular expression RE2 accepts (no backreferences or lookaround): {exc}"
                          ) from None


@cache
def load_profile(name: str = "daydaynews") -> SiteProfile:
    with open(HERE / f"{name}.toml", "rb") as fh:
        return SiteProfile(tomllib.load(fh))
