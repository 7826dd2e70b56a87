"""Redis stream entry ids (`<milliseconds>-<sequence>`): parsed once, here, for every package.

Ids compare as pairs of integers, never as strings ("9-0" < "10-0"). Redis accepts an id without its
sequence part ("1700000000000") as `<ms>-0`, and so does `parse`.
"""

from __future__ import annotations


def parse(entry_id: str | bytes) -> tuple[int, int]:
    """(milliseconds, sequence) of an entry id; ValueError when it is not one."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_id(ms: int, seq: int = 0) -> str:
    return f"{ms}-{seq}"


def after(entry_id: str | bytes) -> str:
    """The smallest id greater than `entry_id`."""
    ms, seq = parse(entry_id)
    return format_id(ms, seq + 1)


def older(a: str | bytes, b: str | bytes) -> str:
    """The smaller of two ids, as text."""
    first, second = parse(a), parse(b)
    return format_id(*min(first, second))


def millis(entry_id: str | bytes) -> int:
    """The time part of an id: when the entry was added, in milliseconds since the epoch (`parse`'s first
    part, written out: the alert worker asks it on every delivery)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    ms, _, seq = text.partition("-")
    int(seq or 0)  # an id with a malformed sequence is no id, as for `parse`
    return int(ms)
