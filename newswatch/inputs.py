"""The JSON-lines input of `newswatch dedupe` and `newswatch topic`: one reader, so a file that cannot be
opened or is not UTF-8 text is one line naming it (exit 2) in both, whether it is a file or stdin."""

from __future__ import annotations

import sys
from collections.abc import Iterator

from newswatch.errors import InputError


def numbered_lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line of `path` (- for stdin), decoded as UTF-8."""
    if path == "-":
        stream = open(sys.stdin.fileno(), encoding="utf-8", closefd=False)
    else:
        try:
            stream = open(path, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    number = 0
    with stream:
        try:
            for number, line in enumerate(stream, 1):
                if line.strip():
                    yield number, line
        except UnicodeDecodeError:
            where = "stdin" if path == "-" else path
            raise InputError(f"{where}: line {number + 1}: expected UTF-8 text") from None
