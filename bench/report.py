"""How every benchmark ends: print its report and write the same text to its results file."""

from __future__ import annotations

from pathlib import Path


def write_report(lines: list[str], out: str | Path) -> None:
    text = "\n".join(lines) + "\n"
    print(text, end="")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text, encoding="utf-8")
