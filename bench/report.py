"""How every benchmark ends: print its report and write the same text to its results file; and the
machine line a report starts with."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> str:
    """CPU model, cores, OS and Python, as the reports' `machine:` line gives them."""
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "?")
    return f"{cpu}, nproc {os.cpu_count()}, {platform.platform()}, Python {platform.python_version()}"


def write_report(lines: list[str], out: str | Path) -> None:
    text = "\n".join(lines) + "\n"
    print(text, end="")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text, encoding="utf-8")
