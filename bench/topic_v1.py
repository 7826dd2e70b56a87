"""FROZEN COPY, for bench/topic_quality.py only: crawler/topic.py as it was before aliases and context
(commit fa13ee2), scoring with bench/data/topic/v1/us_russia_talks.toml. Do not import from the package.

The topic filter: is an article about the topic? A topic is data (`crawler/topics/<name>.toml`).

A topic names sides (for the default: the US side, the Russian side, talks and contacts), each a table of
terms with weights, plus compound terms that stand for several sides at once (美俄). Matching runs on text
folded to Simplified script (`crawler.normalize.to_simplified`), so a file written in Simplified serves
the site's Traditional pages and Simplified reprints alike.

Scoring demands that the sides meet: a window (a paragraph, or a run of its sentences) scores only when
every required side has a term in it, so a long mixed text that names each side somewhere, apart, scores
nothing. The file's header comment spells the formula out for users writing their own topic.

Reads the setting `NEWSWATCH_TOPICS` (through `Settings.topics`, handed to `load_topic`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from crawler.normalize import to_simplified
from newswatch.errors import TopicFileError

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

log = logging.getLogger(__name__)

DEFAULT_TOPIC = Path(__file__).parent / "topics" / "us_russia_talks.toml"
# Sentence ends, in both scripts' punctuation (full-width and ASCII).
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])")
# Matching reads this much of an article at most: topics are decided early in a text, and a bound keeps a
# hostile page from costing more than a normal one.
MAX_TEXT_CHARS = 200_000


@dataclass(frozen=True)
class TopicMatch:
    name: str
    score: float
    matched: list[str]
    on_topic: bool


@dataclass(frozen=True)
class Topic:
    name: str
    description: str
    require: tuple[str, ...]
    threshold: float
    title_weight: float
    max_windows: int
    window_chars: int
    # term -> ((side, weight), ...): a plain term has one side, a compound several.
    terms: dict[str, tuple[tuple[str, float], ...]]

    def __post_init__(self):
        # Longest first, so 美俄会谈 wins over 美俄 where both start at one position.
        ordered = sorted(self.terms, key=len, reverse=True)
        object.__setattr__(self, "_pattern", re.compile("|".join(map(re.escape, ordered))))

    def _window_score(self, text: str, found: dict[str, int]) -> float:
        best: dict[str, float] = {}
        for match in self._pattern.finditer(text):
            term = match.group()
            found[term] = found.get(term, 0) + 1
            for side, weight in self.terms[term]:
                best[side] = max(best.get(side, 0.0), weight)
        if not all(side in best for side in self.require):
            return 0.0
        return sum(best.values())

    def match(self, title: str, text: str) -> TopicMatch:
        """Score an article. `title` and `text` may be in either script."""
        title = to_simplified((title or "")[:1000])
        text = to_simplified((text or "")[:MAX_TEXT_CHARS])
        found: dict[str, int] = {}
        title_score = self._window_score(title, found) * self.title_weight
        scores = sorted((self._window_score(w, found) for w in windows(text, self.window_chars)), reverse=True)
        score = round(title_score + sum(scores[: self.max_windows]), 3)
        matched = sorted(found, key=lambda t: (-found[t], t))
        return TopicMatch(name=self.name, score=score, matched=matched, on_topic=score >= self.threshold)


def windows(text: str, max_chars: int) -> list[str]:
    """Paragraphs; a paragraph longer than `max_chars` as runs of whole sentences of at most that length."""
    out: list[str] = []
    for paragraph in text.split("\n"):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph) <= max_chars:
            out.append(paragraph)
            continue
        run = ""
        for sentence in _SENTENCE_END.split(paragraph):
            if run and len(run) + len(sentence) > max_chars:
                out.append(run)
                run = ""
            run += sentence
        if run:
            out.append(run)
    return out


# --- loading -------------------------------------------------------------------------------------

def load_topic(path: Path | None = None) -> Topic:
    """The topic in a TOML file (None: the built-in US–Russia talks). Raises TopicFileError naming the
    file and, where it can be found, the line."""
    path = Path(path) if path is not None else DEFAULT_TOPIC
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TopicFileError(str(path), f"cannot read ({exc.strerror or exc})") from None
    try:
        source = raw.decode("utf-8")
        data = tomllib.loads(source)
    except UnicodeDecodeError:
        raise TopicFileError(str(path), "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_from_message(str(exc))
        raise TopicFileError(str(path), f"not valid TOML: {exc.args[0] if exc.args else exc}", line) from None
    topic = _build(data, source, str(path))
    log.debug("topic %s loaded from %s: %d terms", topic.name, path, len(topic.terms))
    return topic


def _line_from_message(message: str) -> int | None:
    # Python < 3.14 puts the position only in the message: "... (at line 3, column 7)".
    found = re.search(r"line (\d+)", message)
    return int(found.group(1)) if found else None


def _line_of(source: str, needle: str) -> int | None:
    """The first line holding `needle`: a quoted term, `[table]`, or `key` (then only as `key =`)."""
    key = re.compile(rf"^\s*{needle}\s*=") if re.fullmatch(r"[A-Za-z_]+", needle) else None
    for number, line in enumerate(source.splitlines(), 1):
        if (key.search(line) if key else needle in line):
            return number
    return None


def _number(data: dict, key: str, default, source: str, path: str, kind=float, minimum=0.0):
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise TopicFileError(path, f"`{key}` must be a {'whole ' if kind is int else ''}number, got {value!r}",
                             _line_of(source, key))
    if value <= minimum:
        raise TopicFileError(path, f"`{key}` must be greater than {minimum}, got {value!r}", _line_of(source, key))
    return kind(value)


def _build(data: dict, source: str, path: str) -> Topic:
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise TopicFileError(path, "missing `name` (a string naming the topic)", _line_of(source, "name"))
    sides = data.get("sides")
    if not isinstance(sides, dict) or not sides:
        raise TopicFileError(path, "missing [sides.<side>] tables of terms and weights", _line_of(source, "[sides"))
    terms: dict[str, list[tuple[str, float]]] = {}
    for side, table in sides.items():
        if not isinstance(table, dict) or not table:
            raise TopicFileError(path, f"[sides.{side}] must list terms with weights, e.g. \"美国\" = 1.0",
                                 _line_of(source, f"sides.{side}"))
        for term, weight in table.items():
            line = _line_of(source, f'"{term}"') or _line_of(source, term)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
                raise TopicFileError(path, f"weight of {term!r} in [sides.{side}] must be a positive number, "
                                           f"got {weight!r}", line)
            terms.setdefault(_fold(term), []).append((side, float(weight)))
    require = data.get("require", list(sides))
    if not isinstance(require, list) or not require or not all(r in sides for r in require):
        raise TopicFileError(path, f"`require` must list sides defined under [sides], got {require!r}",
                             _line_of(source, "require"))
    compound = data.get("compound", {})
    if not isinstance(compound, dict):
        raise TopicFileError(path, "[compound] must map terms to lists of sides", _line_of(source, "[compound]"))
    for term, its_sides in compound.items():
        if not isinstance(its_sides, list) or not its_sides or not all(s in sides for s in its_sides):
            raise TopicFileError(path, f"compound term {term!r} must list sides defined under [sides], "
                                       f"got {its_sides!r}", _line_of(source, f'"{term}"'))
        terms.setdefault(_fold(term), []).extend((s, 1.0) for s in its_sides)
    if "" in terms:
        raise TopicFileError(path, "an empty term matches everything", _line_of(source, '""'))
    return Topic(
        name=name.strip(), description=str(data.get("description", "")), require=tuple(require),
        threshold=_number(data, "threshold", 6.0, source, path),
        title_weight=_number(data, "title_weight", 2.0, source, path, minimum=-1.0),
        max_windows=_number(data, "max_windows", 3, source, path, kind=int),
        window_chars=_number(data, "window_chars", 160, source, path, kind=int),
        terms={term: tuple(entries) for term, entries in terms.items()},
    )


def _fold(term: str) -> str:
    # A user may write terms in Traditional script; match them on the same folded text.
    return to_simplified(term.strip())
