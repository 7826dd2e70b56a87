"""Text normalisation shared by the topic filter and the reprint detector: one script, one width.

`to_simplified` folds Traditional script (as the site prints it) to Simplified with OpenCC, so one topic
file and one fingerprint serve both scripts. `normalize` also applies NFKC (full-width digits and
punctuation to ASCII) and drops punctuation and whitespace, which reprints change freely.
"""

from __future__ import annotations

import re
import threading
import unicodedata

_local = threading.local()

# Anything that is not a letter or a digit in any script: punctuation, symbols, spaces.
_NOISE = re.compile(r"[\W_]+", re.UNICODE)


def _converter():
    # OpenCC converters are not documented as thread-safe: one per thread.
    conv = getattr(_local, "t2s", None)
    if conv is None:
        import opencc

        conv = _local.t2s = opencc.OpenCC("t2s")
    return conv


def to_simplified(text: str) -> str:
    """Traditional (and mixed) script to Simplified; Simplified text passes through unchanged."""
    if not text:
        return ""
    return _converter().convert(text)


def normalize(text: str) -> str:
    """NFKC, Simplified script, lower case, punctuation and whitespace removed."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text)
    text = to_simplified(text).lower()
    return _NOISE.sub("", text)
