"""Regenerate the settings table in docs/configuration.md from the settings' one declaration (the fields of
newswatch.config.Settings). Run after adding or changing a setting; tests/test_config.py checks the file
is up to date.

    .venv/bin/python scripts/configuration_docs.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"
MARKERS = re.compile(r"(<!-- settings:start -->\n).*?(<!-- settings:end -->)", re.S)

sys.path.insert(0, str(ROOT))
from newswatch.config import SPECS  # noqa: E402
from newswatch.defaults import DEFAULT_INTERVAL  # noqa: E402

# Defaults computed at run time, described in words.
SPECIAL = {"data_dir": "`$XDG_DATA_HOME/newswatch` or `~/.local/share/newswatch`",
           "interval": f"{DEFAULT_INTERVAL} (unless `NEWSWATCH_CRON`)", "user_agent": "`newswatch/<version> (…)`",
           "analysis_processes": "1 on a multi-core machine, else 0"}


def default(spec) -> str:
    if spec.attr in SPECIAL:
        return SPECIAL[spec.attr]
    value = spec.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`1`" if value else "`0`"
    if isinstance(value, tuple):
        return "`" + ",".join(value) + "`"
    return f"`{value}`"


def table() -> str:
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for spec in SPECS:
        secret = " (secret: masked in output)" if spec.secret else ""
        rows.append(f"| `{spec.env_name}` | {default(spec)} | {spec.doc}{secret} |")
    rows.append("| `NEWSWATCH_CONFIG` | unset | path of the optional TOML file with the same keys and "
                "`[[webhooks]]` tables |")
    return "\n".join(rows)


def render(text: str) -> str:
    """`text` with the part between the markers replaced by the current table."""
    if not MARKERS.search(text):
        raise SystemExit(f"{DOC}: the <!-- settings:start --> / <!-- settings:end --> markers are missing")
    return MARKERS.sub(lambda m: m.group(1) + table() + "\n" + m.group(2), text)


if __name__ == "__main__":
    DOC.write_text(render(DOC.read_text(encoding="utf-8")), encoding="utf-8")
