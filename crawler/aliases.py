"""Alias data: each entity once, with the other ways it is written (`crawler/topics/*_aliases.toml`).

The same person, place or event is written differently in mainland, Taiwan, Hong Kong and Singapore
usage (特朗普 / 川普, 普京 / 普丁 / 普亭, 鲁比奥 / 盧比歐). OpenCC folds script, not naming, so these are
data: a table per group, each key the entity's name as the topic file uses it, its value the list of its
other names. Names are folded to Simplified like the text, so one entry serves both scripts.

A topic file names its alias files (`aliases = ["us_russia_aliases.toml"]`, relative to the topic file);
`Vocabulary` folds every variant to its entity before the topic is scored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from crawler.normalize import to_simplified
from newswatch.errors import TopicFileError

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]


def fold_term(term: str) -> str:
    """A term as the matcher sees it: Simplified script (a user may write either)."""
    return to_simplified(term.strip())


def read_toml(path: Path) -> tuple[dict, str]:
    """The parsed file and its text; TopicFileError naming the file (and line) when it cannot be read."""
    try:
        source = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise TopicFileError(str(path), f"cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise TopicFileError(str(path), "not UTF-8 text") from None
    try:
        return tomllib.loads(source), source
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_from_message(str(exc))
        raise TopicFileError(str(path), f"not valid TOML: {exc.args[0] if exc.args else exc}", line) from None


def _line_from_message(message: str) -> int | None:
    # Python < 3.14 puts the position only in the message: "... (at line 3, column 7)".
    found = re.search(r"line (\d+)", message)
    return int(found.group(1)) if found else None


def line_of(source: str, needle: str) -> int | None:
    """The first line holding `needle`: a quoted term, `[table]`, or `key` (then only as `key =`)."""
    key = re.compile(rf"^\s*{needle}\s*=") if re.fullmatch(r"[A-Za-z_]+", needle) else None
    for number, line in enumerate(source.splitlines(), 1):
        if (key.search(line) if key else needle in line):
            return number
    return None


def load_aliases(path: Path) -> dict[str, str]:
    """variant (folded) -> entity (folded) for every variant in the file, the entity's own name included."""
    data, source = read_toml(path)
    out: dict[str, str] = {}

    def add(variant: str, entity: str, key: str) -> None:
        folded = fold_term(variant)
        if not folded:
            raise TopicFileError(str(path), f"an empty name under {entity!r} matches everything",
                                 line_of(source, f'"{key}"'))
        if out.get(folded, entity) != entity:
            raise TopicFileError(str(path), f"{variant!r} is listed under both {out[folded]!r} and {entity!r}",
                                 line_of(source, f'"{key}"'))
        out[folded] = entity

    def walk(table: dict, where: str) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                walk(value, f"{where}.{key}" if where else key)
                continue
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TopicFileError(str(path), f"{key!r} in [{where}] must list its other names as strings, "
                                                f"e.g. \"特朗普\" = [\"川普\"], got {value!r}",
                                     line_of(source, f'"{key}"') or line_of(source, key))
            entity = fold_term(key)
            add(key, entity, key)
            for variant in value:
                add(variant, entity, key)

    walk(data, "")
    return out


@dataclass(frozen=True)
class Vocabulary:
    """Every term of a topic, each folded to its entity, found with one compiled alternation."""
    entity_of: dict[str, str]  # term as found (folded) -> entity

    def __post_init__(self):
        # One compiled pattern over all names (not a loop over terms), shaped as a trie: names that share a
        # beginning share its test, so a position no name starts at costs one character class test, not
        # one test per name (0.18 against 0.28 ms for a flat alternation on a 1,800-character article).
        # Longer continuations are tried first, so 美俄会谈 wins over 美俄 where both start at one position.
        object.__setattr__(self, "pattern", re.compile(_trie_pattern(self.entity_of)))

    def finditer(self, text: str):
        """(start, term, entity) for each term found in folded text, left to right, not overlapping."""
        entity_of = self.entity_of
        for match in self.pattern.finditer(text):
            term = match.group()
            if entity_of[term]:  # "" marks a string to ignore (see Topic.ignore)
                yield match.start(), term, entity_of[term]


def _trie_pattern(words) -> str:
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a name ends here

    def build(node: dict) -> str:
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        group = branches[0] if len(branches) == 1 and "" not in node else "(?:" + "|".join(branches) + ")"
        return group + "?" if "" in node else group

    return build(trie) or "(?!)"
