"""The generic article extractor (trafilatura, offline): the fallback when the site profile finds no title
or no body, the sign of a redesign. `newswatch probe` and the crawl's alerts report when it was needed.
"""

from __future__ import annotations

import logging

from crawler.markup import clean_space

log = logging.getLogger(__name__)

# What the generic extractor finds on a page with no article is a stray line or two (a label, garbage);
# below this much text it is not a body.
MIN_GENERIC_BODY_CHARS = 30
# trafilatura's time grows faster than the page (its own MAX_TREE_SIZE is checked only after the work is
# done); a real article page has a few thousand elements: a page with more is not handed to it.
MAX_GENERIC_ELEMENTS = 15_000


def generic_article(root, url: str, want_title: bool, warnings: list[str]) -> tuple[str | None, list[str]]:
    """Title and text lines by trafilatura, on a tree the caller has already stripped of site furniture."""
    import trafilatura  # lazy: a second of imports that only a page the profile misses needs

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
