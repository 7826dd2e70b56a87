"""Rewrite the settings table in README.md from newswatch.config.SPECS (run after adding a setting)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from newswatch.config import SPECS  # noqa: E402

SPECIAL = {"data_dir": "`~/.local/share/newswatch`", "interval": "600 (unless `NEWSWATCH_CRON`)",
           "user_agent": "`newswatch/<version> (…)`"}


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


if __name__ == "__main__":
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text(encoding="utf-8")
    new = re.sub(r"(<!-- settings:start -->\n).*?(\n<!-- settings:end -->)",
                 lambda m: m.group(1) + table() + m.group(2), text, flags=re.S)
    readme.write_text(new, encoding="utf-8")
