"""`./scripts/serve` and `./scripts/test` on a copy of the repository: they install newswatch into .venv only
when pyproject.toml (or the extras asked for) changed, and no install shows setuptools' license deprecation.

The copy's .venv sees the test run's installed packages through a .pth file, so an install resolves every
dependency locally; "no install ran" is shown by running the script with pip unable to build anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from newswatch import __version__

ROOT = Path(__file__).resolve().parents[1]
INSTALL_DEADLINE = 280.0


@pytest.fixture
def checkout(tmp_path):
    copy = tmp_path / "newswatch"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info",
                                                             ".pytest_cache", ".ruff_cache"))
    subprocess.run([sys.executable, "-m", "venv", str(copy / ".venv")], check=True, timeout=INSTALL_DEADLINE)
    site = subprocess.run([str(copy / ".venv" / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "test-run-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return copy


def _script(copy: Path, name: str, *args: str, pip_works: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSWATCH_", "PIP_", "VIRTUAL_ENV"))}
    if not pip_works:  # no index, no wheels: any `pip install` of the project fails (its build needs setuptools)
        env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS="")
    return subprocess.run([str(copy / "scripts" / name), *args], env=env, capture_output=True, text=True,
                          timeout=INSTALL_DEADLINE)


def test_trial_16_serve_and_test_install_only_when_needed(checkout):
    first = _script(checkout, "serve", "--version")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"newswatch {__version__}"
    assert "deprecated" not in first.stderr.lower() and "license" not in first.stderr.lower(), first.stderr

    again = _script(checkout, "serve", "--version", pip_works=False)
    assert again.returncode == 0, again.stderr  # nothing changed: no install was attempted
    assert again.stdout.strip() == f"newswatch {__version__}"

    tests = _script(checkout, "test", "--version")  # other extras: installed once
    assert tests.returncode == 0, tests.stderr
    tests_again = _script(checkout, "test", "--version", pip_works=False)
    assert tests_again.returncode == 0, tests_again.stderr
    serve_after = _script(checkout, "serve", "--version", pip_works=False)
    assert serve_after.returncode == 0, serve_after.stderr

    pyproject = checkout / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n# a change: dependencies may differ now\n")
    changed = _script(checkout, "serve", "--version", pip_works=False)
    assert changed.returncode != 0, "pyproject.toml changed: serve must reinstall (and here pip cannot)"
