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


@pytest.mark.parametrize("dsn", ["notadsn", "https://s3cr3t@o0.ingest.sentry.io/notaproject", "ftp://s3cr3t@host/1"])
@pytest.mark.parametrize("command", ["status", "config"])
def test_trial_02_bad_sentry_dsn(dsn, command):
    _refused(_cli(command, env={"SENTRY_DSN": dsn}), "SENTRY_DSN")


@pytest.mark.parametrize("expr", ["0 0 31 2 *", "0 0 30 2 *"])
def test_trial_06_cron_that_never_fires(expr):
    line = _refused(_cli("config", env={"NEWSWATCH_CRON": expr}), "NEWSWATCH_CRON")
    assert "never" in line


def test_trial_06_cron_that_fires_passes():
    assert _cli("config", env={"NEWSWATCH_CRON": "0 0 29 2 *"}).returncode == 0  # leap days come


@pytest.mark.parametrize("name", ["NEWSWATCH_DOWNLOAD_DELAY", "NEWSWATCH_WEBHOOK_TIMEOUT", "NEWSWATCH_MAX_PAGES"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_trial_07_non_finite_numbers(name, value):
    _refused(_cli("config", env={name: value}), name)


def test_trial_09_config_lists_its_file(tmp_path):
    conf = tmp_path / "newswatch.toml"
    conf.write_text("max_pages = 3\n")
    out = _cli("config", env={"NEWSWATCH_CONFIG": str(conf)}).stdout
    assert any(line.split()[:2] == ["NEWSWATCH_CONFIG", str(conf)] for line in out.splitlines()), out
    unset = _cli("config").stdout
    assert any(line.split()[:2] == ["NEWSWATCH_CONFIG", "(unset)"] for line in unset.splitlines()), unset


def test_trial_12_log_level_doc_names_every_accepted_level():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    row = next(line for line in doc.splitlines() if "NEWSWATCH_LOG_LEVEL" in line)
    for level in ("debug", "info", "warning", "error", "critical"):
        assert level in row
        assert _cli("config", env={"NEWSWATCH_LOG_LEVEL": level}).returncode == 0


@pytest.mark.parametrize("command", ["topic", "dedupe"])
def test_trial_03_input_file_not_utf8(tmp_path, command):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"title": "caf\u00e9", "body": "x", "a": "x", "b": "y"}\n'.encode("latin-1"))
    line = _refused(_cli(command, str(bad)), str(bad))
    assert "UTF-8" in line


def _topic(stdin: str):
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    return subprocess.run([sys.executable, "-m", "newswatch.cli", "topic", "-"], input=stdin, env=base,
                          capture_output=True, text=True, timeout=60)


def test_trial_10_missing_and_null_title_or_body_are_both_empty():
    import json

    lines = ['{"body": "x"}', '{"title": null, "body": "x"}', '{"title": "x"}', '{"title": "x", "body": null}']
    done = _topic("\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    out = [json.loads(x) for x in done.stdout.splitlines()]
    assert len(out) == 4 and out[0] == out[1] and out[2] == out[3]


@pytest.mark.parametrize("bad", ['{"title": 1, "body": null}', '{"title": "x", "body": 3}', '{"body": ["x"]}'])
def test_trial_10_a_title_or_body_of_another_type_is_refused(bad):
    done = _topic(bad + "\n")
    assert done.returncode == 2 and "line 1" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("url", ["ftp://x/a.html", "http://[::1/x", "http://127.0.0.1:99999/a.html", "http:///a.html"])
def test_trial_04_probe_url_must_be_http_with_a_host(url):
    line = _refused(_cli("probe", url), "URL")
    assert "http(s)" in line


def test_trial_08_config_checks_webhook_secrets_like_alerts(tmp_path):
    conf = tmp_path / "newswatch.toml"
    conf.write_text('[[webhooks]]\nname = "ops"\nurl = "https://hooks.example.com/a"\nsecret = "s3cr3t"\n')
    for command in ("config", "alerts"):
        line = _refused(_cli(command, env={"NEWSWATCH_CONFIG": str(conf), "NEWSWATCH_DATA_DIR": str(tmp_path)}),
                        "webhooks.ops.secret")
        assert "whsec_" in line
    env = {"NEWSWATCH_WEBHOOK_URL": "https://hooks.example.com/a", "NEWSWATCH_WEBHOOK_SECRET": "s3cr3t"}
    _refused(_cli("config", env=env), "NEWSWATCH_WEBHOOK_SECRET")


def _start_refused(url: str, tmp_path, *, file: bool = False):
    env = {"NEWSWATCH_REDIS_URL": "redis://127.0.0.1:6379/0", "NEWSWATCH_KEY_PREFIX": f"trial11-{os.getpid()}",
           "NEWSWATCH_DATA_DIR": str(tmp_path)}
    if file:
        conf = tmp_path / "newswatch.toml"
        conf.write_text(f'[[webhooks]]\nname = "ops"\nurl = "{url}"\n')
        env["NEWSWATCH_CONFIG"] = str(conf)
    else:
        env["NEWSWATCH_WEBHOOK_URL"] = url
    return _cli("alerts", env=env)


@pytest.mark.parametrize("url", ["http://0x7f000001:9000/hook", "http://2130706433:9000/hook",
                                 "http://127.1:9000/hook", "http://0177.0.0.1:9000/hook"])
def test_trial_11_loopback_written_as_a_number_is_refused_at_start(url, tmp_path):
    line = _refused(_start_refused(url, tmp_path), "NEWSWATCH_WEBHOOK_URL")
    assert "loopback" in line and "127.0.0.1" in line


def test_trial_11_metadata_error_names_the_setting(tmp_path):
    line = _refused(_start_refused("http://169.254.169.254/latest", tmp_path), "NEWSWATCH_WEBHOOK_URL")
    assert "metadata" in line
    line = _refused(_start_refused("http://169.254.169.254/latest", tmp_path, file=True), "webhooks.ops.url")
    assert "metadata" in line


@pytest.mark.parametrize("url", ["ftp://hooks.example.com/a", "hooks.example.com/a", "http://[::1/a"])
def test_trial_11_webhook_url_from_the_environment_is_checked_at_load(url):
    _refused(_cli("config", env={"NEWSWATCH_WEBHOOK_URL": url}), "NEWSWATCH_WEBHOOK_URL")


@pytest.mark.parametrize("command", ["config", "run"])
@pytest.mark.parametrize("content", [None, 'name = "x"\nthreshold = "high"\n', "not toml ["])
def test_trial_05_run_and_config_refuse_a_bad_topic_file(command, content, tmp_path):
    topics = tmp_path / "topic.toml"
    if content is not None:
        topics.write_text(content)
    env = {"NEWSWATCH_TOPICS": str(topics), "NEWSWATCH_DATA_DIR": str(tmp_path),
           "NEWSWATCH_REDIS_URL": "redis://127.0.0.1:6379/0", "NEWSWATCH_KEY_PREFIX": f"trial05-{os.getpid()}"}
    line = _refused(_cli(command, env=env), "NEWSWATCH_TOPICS")
    assert str(topics) in line


def test_trial_05_a_topic_file_whose_alias_file_is_missing_is_refused(tmp_path):
    from pathlib import Path

    builtin = Path(__file__).resolve().parents[1] / "crawler" / "topics"
    source = next(p for p in sorted(builtin.glob("*.toml")) if "\naliases = " in p.read_text(encoding="utf-8"))
    topics = tmp_path / source.name
    topics.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")  # its alias files are not beside it
    proc = _cli("config", env={"NEWSWATCH_TOPICS": str(topics)})
    _refused(proc, "NEWSWATCH_TOPICS")
