"""The layering (issue 11 §2): import-linter's contracts in pyproject.toml hold, they catch a violation, and
an import inside a function of one project module from another says why it is lazy."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("newswatch", "crawler", "scheduler", "alerts")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(pythonpath or cwd)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_import_contracts_hold():
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "broken" in proc.stdout and " 0 broken" in proc.stdout


def _copy_tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_contracts_catch_a_cross_import_a_base_import_a_cli_import_and_a_cycle(tmp_path):
    """The contracts are not vacuous: each kind of violation, added inside a function, breaks one."""
    tree = _copy_tree(tmp_path)
    additions = {
        "crawler/seen.py": "\n\ndef _cross():\n    import alerts.signing\n    return alerts.signing\n",
        "newswatch/masking.py": "\n\ndef _up():\n    from scheduler import leader\n    return leader\n",
        "newswatch/crontab.py": "\n\ndef _cycle():\n    from newswatch.config import Settings\n    return Settings\n",
        "scheduler/leader.py": "\n\ndef _cli():\n    from newswatch import cli\n    return cli\n",
    }
    for name, code in additions.items():
        with open(tree / name, "a", encoding="utf-8") as handle:
            handle.write(code)
    proc = lint_imports(tree)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "crawler.seen -> alerts.signing" in proc.stdout
    assert "newswatch.masking -> scheduler.leader" in proc.stdout
    assert ".crontab -> .config" in proc.stdout or ".config -> .crontab" in proc.stdout
    assert "scheduler.leader -> newswatch.cli" in proc.stdout
    assert proc.stdout.count("BROKEN") == 4


def _lazy_comment(lines: list[str], lineno: int) -> bool:
    """A `lazy:` comment on the import's line, or above it in the run of imports and comments it opens."""
    index = lineno - 1
    if "lazy:" in lines[index]:
        return True
    index -= 1
    while index >= 0:
        text = lines[index].strip()
        if "lazy:" in text:
            return True
        if not (text.startswith("#") or text.startswith(("import ", "from ")) or not text):
            return False
        index -= 1
    return False


def test_function_level_imports_of_project_modules_say_why():
    """No import inside a function to dodge a cycle: one kept for start-up time says `lazy:` and why."""
    unexplained = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            for function in ast.walk(ast.parse("\n".join(lines))):
                if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for node in ast.walk(function):
                    if isinstance(node, ast.ImportFrom) and node.level == 0:
                        names = [node.module or ""]
                    elif isinstance(node, ast.Import):
                        names = [alias.name for alias in node.names]
                    else:
                        continue
                    if any(name.split(".")[0] in PACKAGES for name in names) and not _lazy_comment(lines, node.lineno):
                        unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}: {', '.join(names)}")
    assert not unexplained, "imports inside functions with no `lazy:` reason: " + "; ".join(unexplained)
