"""Defects a user trial of main found, each reproduced through the `newswatch` command line: bad input or
configuration is one line naming the setting or input and what was expected, exit 2, no traceback, no secret."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _cli(*args, env=None, cwd=None):
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_") and k != "SENTRY_DSN"}
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "newswatch.cli", *args], env=base, capture_output=True,
                          text=True, timeout=60, cwd=cwd)


def _refused(proc, name: str, *, secret: str = "s3cr3t"):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert name in lines[0], lines[0]
    assert secret not in proc.stderr + proc.stdout
    return lines[0]


@pytest.mark.parametrize("url", [
    "redis://:s3cr3t@127.0.0.1:99999/0",
    "redis://:s3cr3t@127.0.0.1:abc/0",
    "redis://:s3cr3t@[::1:6379/0",
    "redis://:s3cr3t@127.0.0.1:6379/15?foo=bar",
    "redis://:s3cr3t@127.0.0.1:6379/abc",
    "redis://:s3cr3t@127.0.0.1:6379/0?socket_timeout=soon",
    "redis+sentinel://:s3cr3t@127.0.0.1:99999/mymaster",
])
@pytest.mark.parametrize("command", ["status", "config"])
def test_trial_01_malformed_redis_url(url, command):
    _refused(_cli(command, env={"NEWSWATCH_REDIS_URL": url}), "NEWSWATCH_REDIS_URL")


def test_trial_01_malformed_redis_url_in_file(tmp_path):
    conf = tmp_path / "newswatch.toml"
    conf.write_text('redis_url = "redis://:s3cr3t@[::1:6379/0"\n')
    _refused(_cli("status", env={"NEWSWATCH_CONFIG": str(conf)}), "NEWSWATCH_REDIS_URL")


def test_trial_01_redis_url_options_redis_py_knows_pass():
    proc = _cli("config", env={"NEWSWATCH_REDIS_URL": "redis://:s3cr3t@127.0.0.1:6379/3?socket_timeout=2"})
    assert proc.returncode == 0, proc.stderr
    assert "s3cr3t" not in proc.stdout
