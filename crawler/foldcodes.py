"""The reprint detector's folding (crawler/normalize.py: `fold`, `squeeze`, `clauses`) done on arrays of code
points: one table lookup per character instead of NFKC, OpenCC and `str.lower` passes, and masks instead
of regular expressions. `squeezed_and_clauses` returns exactly what `normalize.squeeze(fold(t))` and
`normalize.clauses(fold(t))` return (tests/test_normalize_codes.py compares them), or None for the rare
text these tables cannot fold alone (a character outside the Basic Multilingual Plane, one whose NFKC
form depends on its neighbours, or whose lower case does): the caller then takes the string functions.
`evidence_parts` gives what crawler/dedupe.py: `evidence` needs from the same steps, in one function
(`squeezed_and_clauses` is built on it, so the comparison covers it); `fold_codes` and `marked_codes` are
the same steps one by one (bench/dedupe_speed.py --profile times them).

The tables (built on first use, ~0.2 s): for every BMP code point, its NFKC form, converted to Simplified
(the character-level part of OpenCC `tw2sp`, as `fold` does) and lower-cased; whether it is "noise" for
`squeeze` (`[\\W_]`), a clause end, a decimal digit. Text goes in as UTF-16 and the tables hold 16-bit
values (half the memory of 32-bit ones; no faster in bench/dedupe_speed.py); a surrogate, i.e. anything
beyond the BMP, is one of the characters the tables leave to the string functions.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

import numpy as np

from crawler import normalize as norm

_tables = None
_phrases = None
_DIGIT_UNITS: frozenset[bytes] = frozenset()  # the decimal digits as UTF-16 bytes (set with _phrases)
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
# are left to the string functions, so no folded text holds them), and the second for noise.
STRINGS, EXPAND = 0xFFFF, 0xFFFE
DROP = 0xFFFF


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
    # second, on folded characters: the character itself, 0 for a clause end, DROP for other noise
    # (squeezed out); '.' is a clause end unless between two decimal digits (`marked_codes`)
    second = np.where(mask(r"[\W_]"), DROP, np.arange(_BMP)).astype(np.uint16)
    second[[ord(c) for c in "\n。！？；!?;…，,、:：."]] = 0
    digits = np.array([unicodedata.category(chr(c)) == "Nd" for c in range(_BMP)])
    return first, second, digits, expansions


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
    first, _, _, expansions = tables()
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


def marked_codes(folded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(squeezed, marked) code points of folded text: `marked` has the noise dropped and every clause end
    as a 0 (NUL is itself noise, so never in the text); `squeezed` is `marked` without the 0s."""
    _, second, digits, _ = tables()
    marked = second.take(folded)
    _decimal_points(folded, marked, digits)
    marked = marked[marked != DROP]
    return marked[marked != 0], marked


def _decimal_points(folded: np.ndarray, marked: np.ndarray, digits: np.ndarray) -> None:
    """'.' ends a clause unless it is a decimal point (a digit on both sides): those become DROP in
    `marked`. At either end of the text, clipping makes the '.' its own neighbour, which is no digit."""
    dots = (folded == 46).nonzero()[0]
    if len(dots):
        before, after = folded.take(dots - 1, mode="clip"), folded.take(dots + 1, mode="clip")
        marked[dots[digits[before] & digits[after]]] = DROP


def phrase_lookup():
    """The Taiwan phrases (crawler/normalize.py: `phrase_tables`) as `evidence_parts` looks them up
    (built on first use): `pairs`, for each code, two 16-bit numbers in one 32-bit word — the low one
    numbers the characters that start a phrase (times a row width), the high one those that come second;
    `starts`: for their sum modulo 2**16 (so 16-bit, half normalize's tables and their cache lines),
    whether some phrase starts with such a pair. The sum wraps, so a few other pairs are flagged too,
    which `replace` finds no phrase for. `replace`: UTF-16 bytes of a phrase's first two characters ->
    (phrase, its replacement, both as UTF-16 bytes, the phrase's length, and the replacement's codes in
    `marked_codes`' second table when the two are as long and hold no digit or '.', else None), the
    longest first, as normalize's `replace_phrases` tries them."""
    global _phrases, _DIGIT_UNITS
    if _phrases is None:
        _, second, digits, _ = tables()
        _DIGIT_UNITS = frozenset(_ENCODE16(chr(c))[0] for c in np.flatnonzero(digits).tolist())
        _, _, _, by_pair, phrases = norm.phrase_tables()
        firsts, seconds = sorted({p[0] for p in by_pair}), sorted({p[1] for p in by_pair})
        low, high = np.zeros(_BMP, dtype=np.uint32), np.zeros(_BMP, dtype=np.uint32)
        low[[ord(c) for c in firsts]] = np.arange(1, len(firsts) + 1) * (len(seconds) + 1) % 0x10000
        high[[ord(c) for c in seconds]] = np.arange(1, len(seconds) + 1)
        starts = np.zeros(0x10000, dtype=bool)
        starts[[(low[ord(p[0])] + high[ord(p[1])]) % 0x10000 for p in by_pair]] = True
        replace = {}
        for pair, keys in by_pair.items():
            entries = replace[_ENCODE16(pair)[0]] = []
            for key in keys:
                value = phrases[key]
                plain = len(key) == len(value) and not any(c == "." or digits[ord(c)] for c in key + value)
                entries.append((_ENCODE16(key)[0], _ENCODE16(value)[0], len(key),
                                second[[ord(c) for c in value]] if plain else None))
        _phrases = low | high << 16, starts, replace
    return _phrases


def evidence_parts(text: str) -> tuple[np.ndarray, list[str]] | None:
    """(code points of the squeezed text, its clauses, empty ones included) of `fold(text)`; or None
    (see `fold_codes`). `fold_codes` and `marked_codes` in one, with fewer array operations and Python
    calls (the evidence's time is mostly those): the phrases looked up in 16-bit tables (`phrase_lookup`)
    and replaced in the UTF-16 bytes, a replacement as long as its phrase written straight into the
    marked codes (most are: 建立 -> 创建), the decimal-point masks only when the text has a '.'."""
    if not text:
        return np.zeros(0, dtype=np.uint16), [""]
    folded = _folded_chars(text)
    if folded is None:
        return None
    _, second, digits, _ = tables()
    marked = second.take(folded)
    raw = None  # folded's UTF-16 bytes, once the phrases need them
    if len(folded) >= 2:
        pairs, starts, replace = phrase_lookup()
        halves = pairs.take(folded).view(np.uint16)
        places = starts.take(np.add(halves[0:-2:2], halves[3::2])).nonzero()[0]
        if len(places):  # (in nearly every text: common words start some phrase, e.g. 工作 -> 工作管理员)
            raw = folded.tobytes()
            out, done, respliced = [], 0, False
            for i in places.tolist():
                if i < done:
                    continue
                at = 2 * i
                for key, value, n, codes in replace.get(raw[at:at + 4], ()):
                    if raw.startswith(key, at):
                        out += (raw[2 * done:at], value)
                        done = i + n
                        if codes is None:
                            respliced = True
                        else:  # same length, no digit or '.': folded is the same for the decimal points
                            marked[i:done] = codes
                        break
            if respliced:
                out.append(raw[2 * done:])
                raw = b"".join(out)
                folded = np.frombuffer(raw, dtype="<u2")
                marked = second.take(folded)
    if raw is None:
        _decimal_points(folded, marked, digits)
    else:  # (a '.' is the bytes 2E 00 at an even offset: most texts have none, or a few)
        dots = raw.count(b".\0")
        if dots > 8:
            _decimal_points(folded, marked, digits)
        elif dots:  # the same as `_decimal_points`, without its half-dozen array operations
            at, end = raw.find(b".\0"), len(raw) - 4
            while at >= 0:
                if not at & 1 and 2 <= at <= end and raw[at - 2:at] in _DIGIT_UNITS and raw[at + 2:at + 4] in _DIGIT_UNITS:
                    marked[at >> 1] = DROP
                at = raw.find(b".\0", at + 1)
    marked = marked[marked != DROP]
    return marked[marked != 0], _DECODE16(marked.tobytes())[0].split("\0")


def squeezed_and_clauses(text: str) -> tuple[np.ndarray, str, list[str]] | None:
    """(code points of the squeezed text, the squeezed text, its clauses) of `fold(text)`, or None:
    what `evidence_parts` gives, in the string functions' form (tests/test_normalize_codes.py)."""
    parts = evidence_parts(text)
    if parts is None:
        return None
    squeezed, pieces = parts
    return squeezed, squeezed.tobytes().decode("utf-16-le"), [p for p in pieces if p]
