"""`newswatch topic [--topic PATH] FILE`: the crawl's own topic decision on JSON lines, for tuning a topic.

Each input line is {"title": ..., "body": ...} (FILE, or - for stdin); each output line is
{"on_topic", "score", "matched", "entities", "passages"}. The topic is --topic, else the one the crawl
uses (`NEWSWATCH_TOPICS`, else the built-in one). A line that is not such an object stops the run with its
number (exit 2), like `newswatch dedupe`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from crawler.topic import load_topic
from newswatch.errors import InputError, TopicFileError


def topic_command(settings, path: str, topic_path: str | None = None) -> int:
    try:
        topic = load_topic(Path(topic_path) if topic_path else settings.topics)
    except TopicFileError as exc:
        if not topic_path:
            raise
        raise InputError(f"--topic {str(exc).split(': ', 1)[1]}") from None
    stream = sys.stdin if path == "-" else _open_input(path)
    with stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                article = json.loads(line)
                title, body = article.get("title", ""), article["body"]
                if not isinstance(title, str) or not isinstance(body, str):
                    raise TypeError
            except (ValueError, KeyError, TypeError, AttributeError):
                raise InputError(f"{path}: line {number}: expected a JSON object "
                                 f'{{"title": "headline", "body": "paragraphs joined by \\n"}}') from None
            got = topic.match(title, body)
            explained = got.explain()
            print(json.dumps({"on_topic": got.on_topic, "score": explained["score"], "matched": got.matched,
                              "entities": got.entities, "passages": got.passages}, ensure_ascii=False),
                  flush=True)
    return 0


def _open_input(path: str):
    try:
        return open(path, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
