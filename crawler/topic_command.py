"""`newswatch topic [--topic PATH] FILE`: the crawl's own topic decision on JSON lines, for tuning a topic.

Each input line is {"title": ..., "body": ...} (FILE, or - for stdin); each output line is
{"on_topic", "score", "matched", "entities", "passages"}. The topic is --topic, else the one the crawl
uses (`NEWSWATCH_TOPICS`, else the built-in one). Title and body are strings; a missing or null one counts
as empty (an article page may lack either), any other type is refused. A line that is not such an object stops the run with its
number (exit 2), like `newswatch dedupe`.
"""

from __future__ import annotations

import json
from pathlib import Path

from crawler.topic import load_topic
from newswatch.errors import InputError, TopicFileError
from newswatch.inputs import numbered_lines


def topic_command(settings, path: str, topic_path: str | None = None) -> int:
    try:
        topic = load_topic(Path(topic_path) if topic_path else settings.topics)
    except TopicFileError as exc:
        if not topic_path:
            raise
        raise InputError(f"--topic {str(exc).split(': ', 1)[1]}") from None
    for number, line in numbered_lines(path):
        try:
            article = json.loads(line)
            # a missing title or body and a null one are the same: empty (a page may lack either)
            title, body = article.get("title") or "", article.get("body") or ""
            if not isinstance(title, str) or not isinstance(body, str):
                raise TypeError
        except (ValueError, TypeError, AttributeError):
            raise InputError(f"{path}: line {number}: expected a JSON object "
                             f'{{"title": "headline", "body": "paragraphs joined by \\n"}} of strings') from None
        got = topic.match(title, body)
        explained = got.explain()
        print(json.dumps({"on_topic": got.on_topic, "score": explained["score"], "matched": got.matched,
                          "entities": got.entities, "passages": got.passages}, ensure_ascii=False),
              flush=True)
    return 0
