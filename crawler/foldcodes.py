"""The reprint detector's folding (crawler/normalize.py: `fold`, `squeeze`, `clauses`) done on arrays of code
points: one table lookup per character instead of NFKC, OpenCC and `str.lower` passes. `clause_pieces`
returns the squeezed clauses of `fold(t)` — their join is `normalize.squeeze(fold(t))`, the non-empty
ones are `normalize.clauses(fold(t))` (tests/test_normalize_codes.py compares them, through
`squeezed_and_clauses`) — or None for the rare text these tables cannot fold alone (a character outside
the Basic Multilingual Plane, one whose NFKC form depends on its neighbours, or whose lower case does):
the caller then takes the string functions. `fold_codes` is the fold alone, as code points.

The tables (built on first use, ~0.2 s): for every BMP code point, its NFKC form, converted to Simplified
(the character-level part of OpenCC `tw2sp`, as `fold` does) and lower-cased; what a folded character is
for `squeeze` and `clauses` (itself, a clause end, or noise: `[\\W_]`). Text goes in as UTF-16 and the
tables hold 16-bit values (half the memory of 32-bit ones); a surrogate, i.e. anything beyond the BMP, is
one of the characters the tables leave to the string functions.
"""

from __future__ import annotations

import codecs
import re

import numpy as np

from crawler import normalize as norm

_tables = None
_phrases = None
_BMP = 0x10000
# the codecs' own functions: `str.encode("utf-16-le")` and `bytes.decode` look the name up first (no fast
# path for it), a third of a microsecond a call, three or four calls a text
_ENCODE16, _DECODE16 = codecs.utf_16_le_encode, codecs.utf_16_le_decode


def _char_table(chars: dict[int, str]) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """code -> lower(NFKC(code).translate(chars)) where that is one character; True in the second array
    where it is not (or is Σ, whose lower case depends on its neighbours); and the codes that become
    several characters which fold to themselves (埠 -> 端口), with what they become."""
    single, contextual, multi_mask, _, _ = norm.nfkc_tables()
    converted = "".join(map(chr, single.tolist())).translate(chars)
    table = np.arange(_BMP, dtype=np.uint32)
    bad = contextual | multi_mask
    outs = converted if len(converted) == _BMP else [chr(c).translate(chars) for c in single.tolist()]
    several = {}
    for cp, out in enumerate(outs):
        low = out.lower()
        if len(low) != 1 or out == "\u03a3" or ord(low) >= _BMP:
            bad[cp] = True
            if len(low) > 1 and low == out:
                several[cp] = low
        else:
            table[cp] = ord(low)
    several = {cp: out for cp, out in several.items()
               if not (contextual[cp] or multi_mask[cp]) and all(table[ord(c)] == ord(c) and not bad[ord(c)] for c in out)}
    bad[0xD800:0xE000] = True
    return table, bad, several


# What the first table gives for a character it cannot fold alone (two non-characters: any in a text
# are left to the string functions, so no folded text holds them); what the second gives for noise and
# for a clause end (both noise themselves, so never characters of the marked text); what the marks of a
# text's own characters give for one the first table cannot fold alone (the highest: one `max` finds it).
STRINGS, EXPAND = 0xFFFF, 0xFFFE
DROP, END, FLAG = 0xFFFE, 0, 0xFFFF
_DROP, _END = chr(DROP), chr(END)


def _build():
    everything = "".join(map(chr, range(_BMP)))

    def mask(pattern: str) -> np.ndarray:
        out = np.zeros(_BMP, dtype=bool)
        out[[m.start() for m in re.finditer(pattern, everything)]] = True
        return out

    table, bad, several = _char_table(norm.tw_chars())
    _, contextual, multi_mask, multi, _ = norm.nfkc_tables()
    # first: what a text's characters become, one lookup each, or what they ask for instead (the two
    # highest values, so one `max` finds them): STRINGS the string functions (the tables cannot), EXPAND
    # NFKC's expansion to several characters first (… -> ...)
    first = table.astype(np.uint16)
    first[bad & ~multi_mask] = STRINGS
    first[multi_mask & ~contextual] = EXPAND
    first[list(several)] = EXPAND
    first[table >= EXPAND] = STRINGS
    # what those become (… -> ..., 埠 -> 端口), folded: the expansion folds to itself (else: STRINGS)
    expansions = {}
    for cp in np.flatnonzero(first == EXPAND).tolist():
        out = [ord(c) for c in multi.get(chr(cp), chr(cp)).translate(several)]
        if max(out) >= EXPAND or first[out].max() >= EXPAND:
            first[cp] = STRINGS
        else:
            expansions[cp] = first[out]
    # second, on folded characters: the character itself, END for a clause end, DROP for other noise
    # (squeezed out); '.' stays itself: a clause end unless between two decimal digits (`clause_pieces`)
    second = np.where(mask(r"[\W_]"), DROP, np.arange(_BMP)).astype(np.uint16)
    second[[ord(c) for c in "\n。！？；!?;…，,、:："]] = END
    second[ord(".")] = ord(".")
    # marks: the same for a text's own characters (second after first, one lookup), FLAG for those first
    # cannot fold alone — but for the expansions that are dots only (… -> ...): however many, they end a
    # clause (a dot beside a dot is no decimal point) and leave nothing in the squeezed text, as END does.
    # (On the folded text this is not `second`: first is not idempotent, 薴 -> 苧 -> 苎.)
    marks = second.take(first)
    marks[first >= EXPAND] = FLAG
    marks[[cp for cp, out in expansions.items() if len(out) > 1 and (out == ord(".")).all()]] = END
    return first, second, expansions, marks


def tables():
    global _tables
    if _tables is None:
        _tables = _build()
    return _tables


def fold_codes(text: str) -> np.ndarray | None:
    """The code points of `normalize.fold(text)` (16-bit), or None when the tables cannot fold `text` alone."""
    if not text:
        return np.zeros(0, dtype=np.uint16)
    folded = _folded_chars(text)
    if folded is None:
        return None
    places = norm.phrase_places(folded)
    if len(places):
        plain = folded.tobytes().decode("utf-16-le")
        phrased = norm.replace_phrases(plain, places)
        if phrased is not plain:
            folded = np.frombuffer(phrased.encode("utf-16-le"), dtype="<u2")
    return folded


def _folded_chars(text: str) -> np.ndarray | None:
    """`fold_codes` before the Taiwan phrases: the characters folded one by one (`text` not empty)."""
    first, _, expansions, _ = tables()
    codes = np.frombuffer(_ENCODE16(text, "surrogatepass")[0], dtype="<u2")
    folded = first.take(codes)  # (take: half the time of first[codes] on a text's few thousand codes)
    if folded.max() >= EXPAND:
        if (folded == STRINGS).any():
            return None
        # a few characters become several (… -> ..., 埠 -> 端口): spliced in (one in five corpus texts has one)
        places = (folded == EXPAND).nonzero()[0].tolist()
        pieces = [folded[:places[0]]]
        for at, after in zip(places, places[1:] + [len(folded)], strict=True):
            pieces += (expansions[int(codes[at])], folded[at + 1:after])
        folded = np.concatenate(pieces)
    return folded


def _marked(chars: str) -> str:
    """`chars` (folded) as `clause_pieces` sees them: noise as DROP, clause ends as END."""
    return "".join(map(chr, tables()[1][[ord(c) for c in chars]].tolist()))


def phrase_lookup():
    """The Taiwan phrases (crawler/normalize.py: `phrase_tables`) as `clause_pieces` looks them up
    (built on first use): `pairs`, for each folded code, two 16-bit numbers in one 32-bit word — the low one
    numbers the characters that start a phrase (times a row width), the high one those that come second;
    `starts`: for their sum modulo 2**16 (so 16-bit, half normalize's tables and their cache lines),
    whether some phrase starts with such a pair. The sum wraps, so a few other pairs are flagged too,
    which `replace` finds no phrase for. `replace`: a phrase's first two characters, marked (`_marked`)
    -> (the phrase and its replacement, both marked, the phrase's length, and the phrase itself when
    marking changed it, else None), longest first, as normalize's `replace_phrases` tries them. A phrase
    with noise or a clause end in it (詹姆斯·卡麦隆: 38 of 744) is checked against the folded text too: marked,
    any noise character looks like any other. `text_pairs`: `pairs` of a text's own characters (after the
    first table, as `marks`)."""
    global _phrases
    if _phrases is None:
        first = tables()[0]
        _, _, _, by_pair, phrases = norm.phrase_tables()
        firsts, seconds = sorted({p[0] for p in by_pair}), sorted({p[1] for p in by_pair})
        low, high = np.zeros(_BMP, dtype=np.uint32), np.zeros(_BMP, dtype=np.uint32)
        low[[ord(c) for c in firsts]] = np.arange(1, len(firsts) + 1) * (len(seconds) + 1) % 0x10000
        high[[ord(c) for c in seconds]] = np.arange(1, len(seconds) + 1)
        starts = np.zeros(0x10000, dtype=bool)
        starts[[(low[ord(p[0])] + high[ord(p[1])]) % 0x10000 for p in by_pair]] = True
        replace = {}
        for key in sorted(phrases, key=len, reverse=True):  # (stable: by_pair's order within each pair)
            marked = _marked(key)
            replace.setdefault(marked[:2], []).append(
                (marked, _marked(phrases[key]), len(key), None if marked == key else key))
        pairs = low | high << 16
        _phrases = pairs, starts, replace, pairs.take(first)  # (first's flags, 0xFFFE-F, start no phrase)
    return _phrases


# A '.' between two decimal digits (a decimal point: dropped; any other '.' ends a clause). `\d` is what
# normalize's clause pattern means by a digit; the marked text has the folded text's digits in place.
_DECIMAL = re.compile(r"\.(?<=\d\.)(?=\d)")


def clause_pieces(text: str) -> list[str] | None:
    """The squeezed clauses of `fold(text)`, empty ones included (their join is the squeezed text); or
    None (see `fold_codes`). Two lookups on the text's own characters (`marks`, `text_pairs`) make it one
    string in which noise is DROP and clause ends END (`marked`) and flag where Taiwan phrases may start;
    the phrases are replaced in that string, then the decimal points are found, the noise dropped and the
    clauses split by string methods — a few C calls where arrays took a dozen operations and a copy back
    to a string. A text with a character the first table cannot fold alone (FLAG; 15 of 600 corpus texts)
    is folded first (`_folded_chars`) and takes the same steps on the folded codes."""
    if not text:
        return [""]
    first, second, _, marks = tables()
    pairs, starts, replace, text_pairs = phrase_lookup()
    codes = np.frombuffer(_ENCODE16(text, "surrogatepass")[0], dtype="<u2")
    marked = marks.take(codes)
    if marked.max() == FLAG:
        codes = _folded_chars(text)
        if codes is None:
            return None
        marked, text_pairs, first = second.take(codes), pairs, None
    marked = _DECODE16(marked)[0]
    if len(codes) >= 2:
        halves = text_pairs.take(codes).view(np.uint16)
        places = starts.take(np.add(halves[0:-2:2], halves[3::2])).nonzero()[0]
        if len(places):  # (in nearly every text: common words start some phrase, e.g. 工作 -> 工作管理员)
            marked = _replace_phrases(marked, places.tolist(), replace, codes, first)
    if "." in marked:
        marked = _DECIMAL.sub(_DROP, marked).replace(".", _END)
    return marked.replace(_DROP, "").split(_END)


def _replace_phrases(marked: str, places: list[int], replace: dict, codes: np.ndarray, first) -> str:
    """normalize's `replace_phrases` on the marked text (`replace`: from `phrase_lookup`); `codes`: the
    folded text's, or the text's own when `first` (the first table) is given to fold them."""
    out, done, plain = [], 0, None
    get = replace.get
    for i in places:
        if i < done:
            continue
        for key, value, n, exact in get(marked[i:i + 2], ()):
            if marked.startswith(key, i):
                if exact is not None:  # (a phrase with noise in it: the folded text decides)
                    if plain is None:
                        plain = _DECODE16(codes if first is None else first.take(codes))[0]
                    if not plain.startswith(exact, i):
                        continue
                out += (marked[done:i], value)
                done = i + n
                break
    if not out:
        return marked
    out.append(marked[done:])
    return "".join(out)


def squeezed_and_clauses(text: str) -> tuple[np.ndarray, str, list[str]] | None:
    """(code points of the squeezed text, the squeezed text, its clauses) of `fold(text)`, or None:
    what `clause_pieces` gives, in the string functions' form (tests/test_normalize_codes.py)."""
    pieces = clause_pieces(text)
    if pieces is None:
        return None
    squeezed = "".join(pieces)
    return np.frombuffer(_ENCODE16(squeezed)[0], dtype="<u2"), squeezed, [p for p in pieces if p]
