"""The topic filter: is an article about the topic? A topic is data (`crawler/topics/<name>.toml`).

A topic names sides (for the default: the US side, the Russian side, talks and contacts), each a table of
entities with weights, plus compound terms that stand for several sides at once (美俄); its alias files
(`crawler/aliases.py`) fold every regional variant (川普, 普丁) to its entity. Matching runs on text
folded to Simplified script (`crawler.normalize.to_simplified`), so one file serves the site's
Traditional pages and Simplified reprints alike.

Scoring demands that the sides meet: a window (a paragraph, or a run of its sentences) scores only when
every required side is in it or, within `borrow` sides, in its `context` neighbours or a title that says
something; mentions far apart score nothing, and a title naming another story (`against`) cuts the
score. The default file's header and docs/topics.md spell the formula out; a file without the new keys
scores exactly as the rule before them.

Reads the setting `NEWSWATCH_TOPICS` (through `Settings.topics`, handed to `load_topic`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from crawler.aliases import Vocabulary, fold_term, line_of, load_aliases, read_toml
from crawler.normalize import to_simplified
from newswatch.errors import TopicFileError

log = logging.getLogger(__name__)

DEFAULT_TOPIC = Path(__file__).parent / "topics" / "us_russia_talks.toml"
# Sentence ends, in both scripts' punctuation (full-width and ASCII).
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])")
# Matching reads this much of an article at most: topics are decided early in a text, and a bound keeps a
# hostile page from costing more than a normal one.
MAX_TEXT_CHARS = 200_000
# The explanation in the item: at most this many passages, each at most this long.
MAX_PASSAGES, PASSAGE_CHARS = 6, 200
# The side that the terms of a topic's `against` list stand for; no window needs it, none scores it.
AGAINST = "(against)"


@dataclass(frozen=True)
class TopicMatch:
    name: str
    score: float
    matched: list[str]  # terms as found (folded to Simplified), most frequent first
    on_topic: bool
    entities: list[str] = field(default_factory=list)  # the entities those terms fold to, most frequent first
    passages: list[str] = field(default_factory=list)  # the text that decided, each at most 200 characters

    def explain(self) -> dict:
        """The item's `topic` field (newswatch/schema/item.schema.json)."""
        return {"name": self.name, "score": round(self.score, 3), "matched": self.matched,
                "entities": self.entities, "passages": self.passages}


@dataclass(frozen=True)
class Topic:
    name: str
    description: str
    require: tuple[str, ...]
    threshold: float
    title_weight: float
    max_windows: int
    window_chars: int
    # entity -> ((side, weight), ...): a plain entity has one side, a compound (美俄) several.
    terms: dict[str, tuple[tuple[str, float], ...]]
    # term as written (folded) -> entity; every entity is also a term of itself.
    aliases: dict[str, str] = field(default_factory=dict)
    # How far a window reads around itself: the sides of `context` paragraphs either side count, times
    # `carry`; the title's sides count in every window, times `title_carry` (0: a window stands alone).
    context: int = 0
    carry: float = 0.0
    title_carry: float = 0.0
    # How many of the required sides a window may take from its context; it must name the rest itself.
    borrow: int = 0
    # Longer strings that hold a term but mean something else (会面临 "will face" holds 会面 "meeting"):
    # found as one piece, they hide the term inside.
    ignore: tuple[str, ...] = ()
    # A title that names another story (a term of `against`: 中俄, 美伊 ...) without naming every side in
    # `focus` itself tells the reader the article is about that story: its score is multiplied by
    # `against_factor`.
    focus: tuple[str, ...] = ()
    against_factor: float = 1.0

    def __post_init__(self):
        entity_of = {term: term for term in self.terms}
        entity_of.update((v, e) for v, e in self.aliases.items() if e in self.terms)
        entity_of.update((term, "") for term in self.ignore)
        object.__setattr__(self, "_vocabulary", Vocabulary(entity_of))

    def _sides(self, hits: list[tuple[int, str]]) -> dict[str, float]:
        """The heaviest weight per side among the terms hit."""
        best: dict[str, float] = {}
        for _, entity in hits:
            for side, weight in self.terms[entity]:
                if weight > best.get(side, 0.0):
                    best[side] = weight
        return best

    def _complete(self, sides: dict) -> float:
        if not all(side in sides for side in self.require):
            return 0.0
        return sum(weight for side, weight in sides.items() if side != AGAINST)

    def match(self, title: str, text: str) -> TopicMatch:
        """Score an article. `title` and `text` may be in either script."""
        title = (title or "")[:1000].replace("\n", " ")
        text = (text or "")[:MAX_TEXT_CHARS]
        # One conversion and one pass of the pattern over title and text together (a line apart: no term
        # holds a line break), then each hit is put in the title or its window.
        both = to_simplified(f"{title}\n{text}")
        cut = both.index("\n")
        folded = both[cut + 1:]
        found: dict[str, int] = {}
        seen: dict[str, int] = {}
        entity_of = self._vocabulary.entity_of
        title_hits, hits = [], []
        for match in self._vocabulary.pattern.finditer(both):
            term = match.group()
            entity = entity_of[term]
            if not entity:
                continue  # a string of `ignore`
            found[term] = found.get(term, 0) + 1
            seen[entity] = seen.get(entity, 0) + 1
            start = match.start()
            if start < cut:
                title_hits.append((start, entity))
            else:
                hits.append((start - cut - 1, entity))
        title_sides = self._sides(title_hits)
        title_score = self._complete(title_sides) * self.title_weight
        elsewhere = AGAINST in title_sides and not all(side in title_sides for side in self.focus)
        # A title carries into the body only when it says something on its own: two of the required sides
        # (普京与特朗普通话), not one word that half the news shares (美国), and not another story's name.
        title_says = sum(side in title_sides for side in self.require) >= 2 and not elsewhere
        spans = _spans(folded, self.window_chars)
        # A term holds no line break or sentence end, so none spans two windows.
        buckets: list[list[tuple[int, str]]] = [[] for _ in spans]
        k = 0
        for start, entity in hits:
            while k < len(spans) and spans[k][1] <= start:
                k += 1
            if k < len(spans) and start >= spans[k][0]:
                buckets[k].append((start - spans[k][0], entity))
        units = [(self._sides(hits), [start for start, _ in hits]) for hits in buckets]
        scored = []
        for i, (own, _) in enumerate(units):
            if not own:
                continue  # a window needs a term of its own: context alone decides nothing
            if sum(side not in own for side in self.require) > self.borrow:
                continue
            sides = dict(own)
            helpers = []
            for j in range(max(0, i - self.context), min(len(units), i + self.context + 1)):
                if j != i and self.carry > 0 and _lift(sides, units[j][0], self.carry):
                    helpers.append(j)
            if self.title_carry > 0 and title_says:
                _lift(sides, title_sides, self.title_carry)
            window = self._complete(sides)
            if window > 0:
                scored.append((window, i, helpers))
        scored.sort(key=lambda s: (-s[0], s[1]))
        best = scored[: self.max_windows]
        score = title_score + sum(s[0] for s in best)
        score = round(score * (self.against_factor if elsewhere else 1.0), 3)
        deciding = sorted({i for _, i, helpers in best for i in (i, *helpers)})
        original = text if len(text) == len(folded) else folded  # OpenCC t2s keeps length; else show folded
        passages = ([_cut(title, [start for start, _ in title_hits])] if title_score > 0 or elsewhere else []) + [
            _cut(original[spans[i][0]:spans[i][1]], units[i][1]) for i in deciding[:MAX_PASSAGES]]
        return TopicMatch(name=self.name, score=score, matched=_by_count(found), on_topic=score >= self.threshold,
                          entities=_by_count(seen), passages=passages)


def _lift(sides: dict, other: dict, factor: float) -> bool:
    """Add `other`'s sides at `factor` of their weight where heavier; whether any was added."""
    lifted = False
    for side, weight in other.items():
        if weight * factor > sides.get(side, 0.0):
            sides[side] = weight * factor
            lifted = True
    return lifted


def _by_count(counts: dict[str, int]) -> list[str]:
    return sorted(counts, key=lambda t: (-counts[t], t))


def _cut(text: str, starts: list[int]) -> str:
    """At most PASSAGE_CHARS of `text`, from a little before its first term."""
    text = text.strip() if len(text) <= PASSAGE_CHARS else text
    if len(text) <= PASSAGE_CHARS:
        return text
    begin = max(0, min(starts or [0]) - 20)
    return text[begin:begin + PASSAGE_CHARS].strip()


def _spans(text: str, max_chars: int) -> list[tuple[int, int]]:
    """(start, end) of each window: a paragraph, or a run of its whole sentences of at most `max_chars`."""
    out: list[tuple[int, int]] = []
    at = 0
    for line in text.split("\n"):
        begin, end = at + len(line) - len(line.lstrip()), at + len(line.rstrip())
        at += len(line) + 1
        if begin >= end:
            continue
        if end - begin <= max_chars:
            out.append((begin, end))
            continue
        run = prev = begin
        for cut in [m.start() for m in _SENTENCE_END.finditer(text, begin, end)] + [end]:
            if cut == prev:
                continue
            if run < prev and cut - run > max_chars:  # the sentence prev..cut does not fit the run
                out.append((run, prev))
                run = prev
            prev = cut
        out.append((run, end))
    return out


def windows(text: str, max_chars: int) -> list[str]:
    """Paragraphs; a paragraph longer than `max_chars` as runs of whole sentences of at most that length."""
    return [text[a:b] for a, b in _spans(text, max_chars)]


# --- loading -------------------------------------------------------------------------------------

def load_topic(path: Path | None = None) -> Topic:
    """The topic in a TOML file (None: the built-in US–Russia talks). Raises TopicFileError naming the
    file and, where it can be found, the line."""
    path = Path(path) if path is not None else DEFAULT_TOPIC
    data, source = read_toml(path)
    topic = _build(data, source, path)
    log.debug("topic %s loaded from %s: %d entities, %d names", topic.name, path, len(topic.terms),
              len(topic.aliases))
    return topic


def _number(data: dict, key: str, default, source: str, path: str, kind=float, minimum=0.0, zero=False):
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise TopicFileError(path, f"`{key}` must be a {'whole ' if kind is int else ''}number, got {value!r}",
                             line_of(source, key))
    if value < minimum or (value == minimum and not zero):
        raise TopicFileError(path, f"`{key}` must be {'at least' if zero else 'greater than'} {minimum}, "
                                   f"got {value!r}", line_of(source, key))
    return kind(value)


def _count(data: dict, key: str, source: str, path: str) -> int:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TopicFileError(path, f"`{key}` must be a whole number (0 or more), got {value!r}", line_of(source, key))
    return value


def _alias_files(data: dict, source: str, path: Path) -> dict[str, str]:
    names = data.get("aliases", [])
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise TopicFileError(str(path), f"`aliases` must list alias files (relative to the topic file), "
                                        f"got {names!r}", line_of(source, "aliases"))
    aliases: dict[str, str] = {}
    for name in names:
        for variant, entity in load_aliases(path.parent / name).items():
            if aliases.get(variant, entity) != entity:
                raise TopicFileError(str(path), f"{variant!r} is an alias of both {aliases[variant]!r} and "
                                                f"{entity!r} in the files of `aliases`", line_of(source, "aliases"))
            aliases[variant] = entity
    return aliases


def _build(data: dict, source: str, path: Path) -> Topic:
    where = str(path)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise TopicFileError(where, "missing `name` (a string naming the topic)", line_of(source, "name"))
    sides = data.get("sides")
    if not isinstance(sides, dict) or not sides:
        raise TopicFileError(where, "missing [sides.<side>] tables of terms and weights", line_of(source, "[sides"))
    aliases = _alias_files(data, source, path)
    # A term the alias data lists as another entity's variant (川普 for 特朗普) is that entity: the two
    # share one set of sides, each side at the heavier of the weights given.
    weights: dict[str, dict[str, float]] = {}

    def add(term: str, side: str, weight: float) -> None:
        entity = aliases.get(fold_term(term), fold_term(term))
        if not entity:
            raise TopicFileError(where, "an empty term matches everything", line_of(source, '""'))
        its = weights.setdefault(entity, {})
        its[side] = max(its.get(side, 0.0), weight)

    for side, table in sides.items():
        if not isinstance(table, dict) or not table:
            raise TopicFileError(where, f"[sides.{side}] must list terms with weights, e.g. \"美国\" = 1.0",
                                 line_of(source, f"sides.{side}"))
        for term, weight in table.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
                raise TopicFileError(where, f"weight of {term!r} in [sides.{side}] must be a positive number, "
                                            f"got {weight!r}", line_of(source, f'"{term}"') or line_of(source, term))
            add(term, side, float(weight))
    require = data.get("require", list(sides))
    if not isinstance(require, list) or not require or not all(r in sides for r in require):
        raise TopicFileError(where, f"`require` must list sides defined under [sides], got {require!r}",
                             line_of(source, "require"))
    compound = data.get("compound", {})
    if not isinstance(compound, dict):
        raise TopicFileError(where, "[compound] must map terms to lists of sides", line_of(source, "[compound]"))
    for term, its_sides in compound.items():
        if not isinstance(its_sides, list) or not its_sides or not all(s in sides for s in its_sides):
            raise TopicFileError(where, f"compound term {term!r} must list sides defined under [sides], "
                                        f"got {its_sides!r}", line_of(source, f'"{term}"'))
        for side in its_sides:
            add(term, side, 1.0)
    against = data.get("against", [])
    if not isinstance(against, list) or not all(isinstance(t, str) and t.strip() for t in against):
        raise TopicFileError(where, f"`against` must list terms (strings), got {against!r}", line_of(source, "against"))
    for term in against:
        add(term, AGAINST, 1.0)
    focus = data.get("focus", [])
    if not isinstance(focus, list) or not all(f in sides for f in focus):
        raise TopicFileError(where, f"`focus` must list sides defined under [sides], got {focus!r}",
                             line_of(source, "focus"))
    context, borrow = (_count(data, key, source, where) for key in ("context", "borrow"))
    ignore = data.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(t, str) and t.strip() for t in ignore):
        raise TopicFileError(where, f"`ignore` must list strings, got {ignore!r}", line_of(source, "ignore"))
    return Topic(
        name=name.strip(), description=str(data.get("description", "")), require=tuple(require),
        threshold=_number(data, "threshold", 6.0, source, where),
        title_weight=_number(data, "title_weight", 2.0, source, where, minimum=-1.0),
        max_windows=_number(data, "max_windows", 3, source, where, kind=int),
        window_chars=_number(data, "window_chars", 160, source, where, kind=int),
        terms={entity: tuple(sorted(its.items())) for entity, its in weights.items()},
        aliases=aliases, context=context, borrow=borrow, ignore=tuple(fold_term(t) for t in ignore),
        focus=tuple(focus), against_factor=_number(data, "against_factor", 1.0, source, where),
        carry=_number(data, "carry", 0.0, source, where, zero=True),
        title_carry=_number(data, "title_carry", 0.0, source, where, zero=True),
    )
