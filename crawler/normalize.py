"""Text normalisation shared by the topic filter and the reprint detector: one script, one width.

`to_simplified` folds Traditional script (as the site prints it) to Simplified with OpenCC, so one topic
file and one fingerprint serve both scripts. `normalize` also applies NFKC (full-width digits and
punctuation to ASCII) and drops punctuation and whitespace, which reprints change freely.

The reprint detector needs a little more (`fold`, `clauses`; site furniture is the site profile's to
drop, crawler/sites): Traditional text is folded character by character (the character
dictionaries of OpenCC `tw2sp`, one table lookup per character) and then has Taiwan phrasing undone
(OpenCC's TWPhrasesRev list, crawler/data/tw_phrases_rev.txt: 資訊→信息, 軟體→软件), because reprints
converted with `s2twp` change words that a character table does not change back. OpenCC's own phrase
segmentation costs more than the rest of the evidence together and catches no more reprints on the
evaluation set (docs/dedupe.md: the speed/recall curve). crawler/foldcodes.py does the same on arrays.
"""

from __future__ import annotations

import re
import threading
import unicodedata

_local = threading.local()

# Anything that is not a letter or a digit in any script: punctuation, symbols, spaces.
_NOISE = re.compile(r"[\W_]+", re.UNICODE)

# NFKC is slow on long CJK text (a quarter of a millisecond per article). Most characters map to a
# fixed replacement whatever their neighbours are (full-width digits and punctuation, compatibility
# ideographs), so a lookup array over the code points gives the same result in a few microseconds; only
# text with a character that can combine with a neighbour (combining marks, jamo, the second half of a
# canonical pair) or outside the Basic Multilingual Plane takes the full algorithm. Built on first use.
_nfkc_tables = None

# Clause ends, after NFKC: full stops, commas (，、 and ASCII), colons, semicolons, question and
# exclamation marks, line breaks; an ASCII '.' only when it is not a decimal point (reprints swap 。 for
# '.'). Clauses rather than sentences: a 1% edit breaks far fewer of them (recall 0.97 -> 1.00 on edited
# reprints in bench/dedupe_quality.py), and they still do not depend on paragraph layout.
_CLAUSE_END = re.compile(r"[\n。！？；!?;…，,、:：]+|(?<!\d)\.|\.(?!\d)")


def _converter(config: str = "t2s"):
    # OpenCC converters are not documented as thread-safe: one per thread and configuration.
    conv = getattr(_local, config, None)
    if conv is None:
        import opencc

        conv = opencc.OpenCC(config)
        setattr(_local, config, conv)
    return conv


def _build_nfkc_tables():
    import numpy as np

    single = np.arange(0x10000, dtype=np.uint32)
    contextual = np.zeros(0x10000, dtype=bool)
    contextual[0x1161:0x1176] = contextual[0x11A8:0x11C3] = True  # Hangul vowel and tail jamo
    contextual[0xD800:0xE000] = True  # lone surrogates: leave them to unicodedata
    multi: dict[str, str] = {}
    for cp in range(0x10000):
        char = chr(cp)
        if unicodedata.combining(char):
            contextual[cp] = True
            continue
        parts = unicodedata.decomposition(char).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            contextual[int(parts[1], 16)] = True  # may compose with the character before it
    for cp in range(0x10000):
        if contextual[cp]:
            continue
        mapped = unicodedata.normalize("NFKC", chr(cp))
        if any(ord(c) > 0xFFFF or contextual[ord(c)] or unicodedata.combining(c) for c in mapped):
            contextual[cp] = True
        elif len(mapped) == 1:
            single[cp] = ord(mapped)
        elif mapped != chr(cp):
            multi[chr(cp)] = mapped  # e.g. … -> ...
    multi_mask = np.zeros(0x10000, dtype=bool)
    multi_mask[[ord(c) for c in multi]] = True
    pattern = re.compile("[" + "".join(re.escape(c) for c in multi) + "]")
    return single, contextual, multi_mask, multi, pattern


def nfkc(text: str) -> str:
    """Exactly `unicodedata.normalize("NFKC", text)`, several times faster on CJK text."""
    if not text:
        return ""
    import numpy as np

    single, contextual, multi_mask, multi, pattern = nfkc_tables()
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    if codes.max() > 0xFFFF or contextual[codes].any():
        return unicodedata.normalize("NFKC", text)
    out = single[codes].astype("<u4").tobytes().decode("utf-32-le")
    if multi_mask[codes].any():
        out = pattern.sub(lambda m: multi[m.group()], out)
    return out


def to_simplified(text: str) -> str:
    """Traditional (and mixed) script to Simplified; Simplified text passes through unchanged."""
    if not text:
        return ""
    return _converter().convert(text)


def normalize(text: str) -> str:
    """NFKC, Simplified script, lower case, punctuation and whitespace removed."""
    if not text:
        return ""
    return _NOISE.sub("", to_simplified(nfkc(text)).lower())


# Code points OpenCC's t2s changes on their own: a text with none of them is already Simplified and
# skips the conversion, which costs more than everything else in `fold` (built on first use).
_traditional_mask = None


def _build_traditional_mask():
    import numpy as np

    conv = _converter("t2s")
    mask = np.zeros(0x10000, dtype=bool)
    for start, end in ((0x3400, 0x4DC0), (0x4E00, 0xA000), (0xF900, 0xFB00)):
        block = "".join(chr(cp) for cp in range(start, end))
        # One character per line so that phrase rules cannot join neighbours; line count is preserved.
        converted = conv.convert("\n".join(block)).split("\n")
        for cp, out in zip(range(start, end), converted, strict=True):
            mask[cp] = out != chr(cp)
    return mask


def has_traditional(text: str) -> bool:
    """Whether any character of `text` has a Simplified form of its own (t2s, character by character)."""
    import numpy as np

    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    codes = codes[codes < 0x10000]
    return bool(traditional_mask()[codes].any())


def nfkc_tables():
    """(single, contextual, multi_mask, multi, pattern): see `_build_nfkc_tables` (built on first use)."""
    global _nfkc_tables
    if _nfkc_tables is None:
        _nfkc_tables = _build_nfkc_tables()
    return _nfkc_tables


def traditional_mask():
    """Code points OpenCC's t2s changes on their own (built on first use)."""
    global _traditional_mask
    if _traditional_mask is None:
        _traditional_mask = _build_traditional_mask()
    return _traditional_mask


_MERGED = {"么": "么", "麼": "么", "著": "着", "瞭": "了", "藉": "借", "揹": "背", "彷": "仿", "覆": "复", "甦": "苏", "鯰": "鲇", "鲶": "鲇"}
_tw_chars = None  # str.translate table: the character-level conversion of `tw2sp`
_tw_phrases = None  # Taiwan phrases, already character-converted and lower case (see phrase_tables)


def tw_chars() -> dict[int, str]:
    global _tw_chars
    if _tw_chars is None:
        conv = _converter("tw2sp")
        table = {}
        for start, end in ((0x3400, 0x4DC0), (0x4E00, 0xA000), (0xF900, 0xFB00)):
            block = [chr(cp) for cp in range(start, end)]
            for char, out in zip(block, conv.convert("\n".join(block)).split("\n"), strict=True):
                if out != char:
                    table[ord(char)] = out
        # characters valid in both scripts that Taiwan copies use for another one (s2twp writes 著 for
        # 着, 瞭 for 了 ...) and that only OpenCC's phrase segmentation would tell apart: one form for both
        table.update({ord(a): b for a, b in _MERGED.items()})
        _tw_chars = table
    return _tw_chars


def phrase_tables():
    global _tw_phrases
    if _tw_phrases is None:
        from importlib.resources import files

        import numpy as np

        chars, phrases = tw_chars(), {}
        for line in files("crawler").joinpath("data/tw_phrases_rev.txt").read_text(encoding="utf-8").splitlines():
            if line and not line.startswith("#"):
                taiwan, mainland = line.split("\t")
                key, value = taiwan.translate(chars).lower(), mainland.split(" ")[0].translate(chars).lower()
                if key != value and len(key) >= 2:  # (every entry has two characters or more)
                    phrases[key] = value
        by_pair: dict[str, list[str]] = {}
        for key in sorted(phrases, key=len, reverse=True):  # longest first
            by_pair.setdefault(key[:2], []).append(key)
        # Which two characters start a phrase, as one lookup in a (first, second) table: `row` numbers the
        # first characters of the pairs (times the row width), `col` the second ones; 0 for every other
        # character, and for anything beyond the BMP (the last entry; lookups clip to it).
        firsts, seconds = sorted({p[0] for p in by_pair}), sorted({p[1] for p in by_pair})
        width = len(seconds) + 1
        row, col = np.zeros(0x10001, dtype=np.int32), np.zeros(0x10001, dtype=np.int32)  # small: cached
        row[[ord(c) for c in firsts]] = np.arange(1, len(firsts) + 1) * width
        col[[ord(c) for c in seconds]] = np.arange(1, len(seconds) + 1)
        starts = np.zeros((len(firsts) + 1) * width, dtype=bool)
        starts[[row[ord(p[0])] + col[ord(p[1])] for p in by_pair]] = True
        _tw_phrases = (row, col, starts, by_pair, phrases)
    return _tw_phrases


def phrase_places(codes):
    """Where a Taiwan phrase's first two characters stand in the text of these code points (an array)."""
    import numpy as np

    row, col, starts, _, _ = phrase_tables()
    if len(codes) < 2:
        return np.zeros(0, dtype=np.intp)
    pairs = row.take(codes[:-1], mode="clip")
    pairs += col.take(codes[1:], mode="clip")
    return np.flatnonzero(starts.take(pairs))


def replace_phrases(folded: str, places) -> str:
    """`folded` with the phrases at `places` (from `phrase_places`) replaced, left to right, the longest
    at each place; `folded` itself when none is replaced."""
    _, _, _, by_pair, phrases = phrase_tables()
    out, done = [], 0
    for i in places.tolist():
        if i < done:
            continue
        for key in by_pair[folded[i:i + 2]]:
            if folded.startswith(key, i):
                out += (folded[done:i], phrases[key])
                done = i + len(key)
                break
    if not out:
        return folded
    out.append(folded[done:])
    return "".join(out)


def fold_phrases(folded: str) -> str:
    """Taiwan phrases (after the character table and lower case) replaced by the Mainland ones, left to
    right, the longest at each place. Only places whose two characters start a phrase are looked at (one
    vectorised lookup), so a text costs microseconds."""
    import numpy as np

    if len(folded) < 2:
        return folded
    places = phrase_places(np.frombuffer(folded.encode("utf-32-le", "surrogatepass"), dtype="<u4"))
    return replace_phrases(folded, places) if len(places) else folded


def fold(text: str) -> str:
    """One width and one script for the reprint detector: NFKC, Simplified, lower case, Taiwan phrasing undone.

    Every text takes the same steps, whatever its script, so that two copies reach one form: a Simplified
    original's 资料 becomes 数据 just as its Taiwan copy's 資料 does. Punctuation is kept so that
    `clauses` can still split; `squeeze` removes it.
    """
    if not text:
        return ""
    return fold_phrases(nfkc(text).translate(tw_chars()).lower())


def squeeze(folded: str) -> str:
    """Punctuation and whitespace removed: what the fingerprint and the length limit see."""
    return _NOISE.sub("", folded)


def clauses(folded: str) -> list[str]:
    """The squeezed clauses of folded text, in order (empty ones dropped)."""
    out = []
    for piece in _CLAUSE_END.split(folded):
        piece = _NOISE.sub("", piece)
        if piece:
            out.append(piece)
    return out
