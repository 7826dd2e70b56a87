"""The item of an on-topic article (newswatch/schema/item.schema.json), built from its analysis."""

from __future__ import annotations

from datetime import datetime, timezone

from crawler.analyse import Analysis
from crawler.sites import ArticleRef, SiteProfile


def build_item(canonical: str, ref: ArticleRef, analysis: Analysis, profile: SiteProfile) -> dict:
    """`_evidence` rides along for the dedupe step, which removes it before the item is queued."""
    article = analysis.article
    return {
        "id": ref.item_id,
        "url": canonical,
        "source": profile.source,
        "title": article.title,
        "published_at": article.published_at,
        "category": article.category or profile.category_name(ref.category) or ref.category,
        "summary": article.summary or "",
        "body": article.body,
        "lang": profile.lang,
        "views": article.views,
        "images": article.images,
        "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "extraction": dict(article.methods),
        "topic": {"name": analysis.topic.name, "score": round(analysis.topic.score, 3),
                  "matched": analysis.topic.matched},
        "_evidence": analysis.evidence,
    }
