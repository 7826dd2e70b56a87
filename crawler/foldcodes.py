"""The reprint detector's folding (crawler/normalize.py: `fold`, `squeeze`, `clauses`) done on arrays of code
points: one table lookup per character instead of NFKC, OpenCC and `str.lower` passes, and masks instead
of regular expressions. `squeezed_and_clauses` returns exactly what `normalize.squeeze(fold(t))` and
`normalize.clauses(fold(t))` return (tests/test_normalize_codes.py compares them), or None for the rare
text these tables cannot fold alone (a character outside the Basic Multilingual Plane, one whose NFKC
form depends on its neighbours, or whose lower case does): the caller then takes the string functions.

The tables (built on first use, ~0.2 s): for every BMP code point, its NFKC form, converted to Simplified
(the character-level part of OpenCC `tw2sp`, as `fold` does) and lower-cased; whether it is "noise" for `squeeze` (`[\\W_]`), a clause end, a decimal digit.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from crawler import normalize as norm

_tables = None
_BMP = 0x10000


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


def _build():
    everything = "".join(map(chr, range(_BMP)))

    def mask(pattern: str) -> np.ndarray:
        out = np.zeros(_BMP, dtype=bool)
        out[[m.start() for m in re.finditer(pattern, everything)]] = True
        return out

    table, bad, several = _char_table(norm.tw_chars())
    _, contextual, multi_mask, _, _ = norm.nfkc_tables()
    # what a text's characters ask for, one lookup each: 1 the string functions (the tables cannot),
    # 2 NFKC's expansion to several characters first (… -> ...)
    before = np.where(bad & ~multi_mask, 1, 0).astype(np.uint8)
    before[multi_mask & ~contextual] = 2
    before[list(several)] = 2
    # and the folded characters: 1 noise (squeezed out), 2 also a clause end, 3 '.' (a clause end
    # unless between two decimal digits)
    after = np.where(mask(r"[\W_]"), 1, 0).astype(np.uint8)
    after[[ord(c) for c in "\n。！？；!?;…，,、:："]] = 2
    after[ord(".")] = 3
    digits = np.array([unicodedata.category(chr(c)) == "Nd" for c in range(_BMP)])
    return table, before, after, digits, several


def tables():
    global _tables
    if _tables is None:
        _tables = _build()
    return _tables


def squeezed_and_clauses(text: str) -> tuple[np.ndarray, str, list[str]] | None:
    """(code points of the squeezed text, the squeezed text, its clauses) of `fold(text)`, or None."""
    table, before, after, digits, several = tables()
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    if not len(codes):
        return np.zeros(0, dtype=np.uint32), "", []
    if codes.max() >= _BMP:
        return None
    asks = before[codes]
    if asks.any():
        if (asks == 1).any():
            return None
        # expanded first (… -> ..., 埠 -> 端口): what they become folds to itself, so the table still applies
        _, _, _, multi, pattern = norm.nfkc_tables()
        text = pattern.sub(lambda m: multi[m.group()], text).translate(several)
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        if before[codes].any():
            return None
    folded = table[codes]
    plain = folded.tobytes().decode("utf-32-le")
    phrased = norm.fold_phrases(plain, folded)
    if phrased is not plain:
        folded = np.frombuffer(phrased.encode("utf-32-le"), dtype="<u4")
    kind = after[folded]
    cut = kind >= 2
    dots = np.flatnonzero(kind == 3)
    if len(dots):  # '.' ends a clause unless it is a decimal point (a digit on both sides)
        inner = dots[(dots > 0) & (dots < len(folded) - 1)]
        cut[inner[digits[folded[inner - 1]] & digits[folded[inner + 1]]]] = False
    keep = kind == 0
    squeezed = folded[keep]
    # clause ends become NUL (itself noise, so never in the text), the rest of the noise goes: one split
    marked = np.where(cut, 0, folded)[keep | cut]
    pieces = [p for p in marked.tobytes().decode("utf-32-le").split("\0") if p]
    return squeezed, "".join(pieces), pieces
