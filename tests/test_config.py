"""Settings: typed values from the environment and the TOML file; every bad value is one line, exit 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from newswatch.config import SPECS, Settings, known_env_names
from newswatch.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults():
    s = Settings.load({})
    assert s.site_url == "https://daydaynews.cc"
    assert s.categories == ("international",)
    assert s.effective_interval == 60 and s.jitter == 10  # docs/performance.md: time to alert at the defaults
    assert s.download_timeout == 30.0
    assert s.timezone == "Asia/Shanghai"
    assert s.key_prefix == "newswatch" and s.keys.items == "newswatch:items"
    assert s.redis_url is None and s.endpoints == ()


@pytest.mark.parametrize("raw, expected", [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("https://daydaynews.cc/", "https://daydaynews.cc"),
    ("HTTP://Example.COM:443", "http://example.com:443"),
])
def test_site_url_is_an_origin(raw, expected):
    assert Settings.load({"NEWSWATCH_SITE_URL": raw}).site_url == expected


@pytest.mark.parametrize("name, value", [
    ("NEWSWATCH_SITE_URL", "http://127.0.0.1:8080/news"),
    ("NEWSWATCH_SITE_URL", "ftp://daydaynews.cc"),
    ("NEWSWATCH_SITE_URL", "daydaynews.cc"),
    ("NEWSWATCH_SITE_URL", "http://127.0.0.1:99999"),
    ("NEWSWATCH_INTERVAL", "ten"),
    ("NEWSWATCH_INTERVAL", "0"),
    ("NEWSWATCH_CONCURRENCY", "1.5"),
    ("NEWSWATCH_DOWNLOAD_DELAY", "-1"),
    ("NEWSWATCH_AUTOTHROTTLE", "maybe"),
    ("NEWSWATCH_CRON", "every minute"),
    ("NEWSWATCH_TIMEZONE", "Mars/Olympus"),
    ("NEWSWATCH_REDIS_URL", "http://127.0.0.1:6379"),
    ("NEWSWATCH_CATEGORIES", "國際"),
    ("NEWSWATCH_WEBHOOK_FORMAT", "telegram"),
    ("NEWSWATCH_LOG_LEVEL", "loud"),
    ("NEWSWATCH_NO_SUCH_SETTING", "1"),
])
def test_bad_values_name_the_setting(name, value):
    with pytest.raises(ConfigError) as info:
        Settings.load({name: value})
    assert name in str(info.value)


def test_interval_and_cron_together_is_an_error():
    with pytest.raises(ConfigError, match="NEWSWATCH_CRON"):
        Settings.load({"NEWSWATCH_INTERVAL": "60", "NEWSWATCH_CRON": "*/5 * * * *"})


def test_booleans():
    for raw, value in [("1", True), ("yes", True), ("TRUE", True), ("0", False), ("no", False), ("false", False)]:
        assert Settings.load({"NEWSWATCH_AUTOTHROTTLE": raw}).autothrottle is value


def test_toml_file_and_sources(tmp_path):
    path = tmp_path / "newswatch.toml"
    path.write_text('site_url = "http://127.0.0.1:8000"\nNEWSWATCH_INTERVAL = 30\n'
                    '[[webhooks]]\nname = "ops"\nurl = "https://hooks.example.com/x"\n'
                    'secrets = ["whsec_AAAA", "whsec_BBBB"]\nformat = "slack"\n')
    s = Settings.load({"NEWSWATCH_CONFIG": str(path), "NEWSWATCH_INTERVAL": "45"})
    assert s.site_url == "http://127.0.0.1:8000" and s.sources["site_url"] == str(path)
    assert s.interval == 45 and s.sources["interval"] == "env"  # the environment wins
    (ops,) = s.endpoints
    assert ops.name == "ops" and ops.format == "slack" and ops.secrets == ("whsec_AAAA", "whsec_BBBB")
    assert "whsec" not in repr(ops) and "hooks.example.com" not in repr(ops)


@pytest.mark.parametrize("text, needle", [
    ("site_url = ", "not valid TOML"),
    ('bogus = 1\n', "bogus"),
    ('[[webhooks]]\nurl = "https://x.example"\n', "name"),
    ('[[webhooks]]\nname = "a"\nurl = "nope"\n', "url"),
    ('[[webhooks]]\nname = "a"\nurl = "https://x.example"\nformat = "fax"\n', "format"),
])
def test_bad_toml_names_the_file_and_the_key(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Settings.load({"NEWSWATCH_CONFIG": str(path)})
    assert str(path) in str(info.value) and needle in str(info.value)


def test_configuration_docs_are_generated_from_the_one_declaration():
    """docs/configuration.md's table is what scripts/configuration_docs.py makes of the Settings fields now."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import configuration_docs
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert configuration_docs.render(text) == text, "docs/configuration.md is stale: run scripts/configuration_docs.py"
    missing = [name for name in sorted(known_env_names()) if f"`{name}`" not in text]
    assert not missing, missing
    assert len(SPECS) == len({s.env_name for s in SPECS})


def test_each_setting_is_declared_once_as_a_settings_field():
    """SPECS is derived from the fields (no second list): every setting is a field with its parser and doc."""
    from dataclasses import fields

    declared = {f.name: f for f in fields(Settings) if "parse" in f.metadata}
    assert [spec.attr for spec in SPECS] == list(declared)
    for spec in SPECS:
        assert spec.doc == declared[spec.attr].metadata["doc"] and spec.doc
    assert Settings.load({}).key_prefix == next(s.default for s in SPECS if s.attr == "key_prefix")


def _cli(*args, env=None):
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_") and k != "SENTRY_DSN"}
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "newswatch.cli", *args], env=base, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("env", [
    {"NEWSWATCH_INTERVAL": "soon"},
    {"NEWSWATCH_SITE_URL": "http://127.0.0.1:1/path"},
    {"NEWSWATCH_CONFIG": "/nonexistent/newswatch.toml"},
    {"NEWSWATCH_TOPICS": "/nonexistent/topic.toml"},
])
def test_cli_bad_configuration_is_one_line_and_exit_2(env, tmp_path):
    proc = _cli("crawl", env={**env, "NEWSWATCH_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert next(iter(env)) in lines[0] or "NEWSWATCH_TOPICS" in lines[0]


def test_cli_config_masks_secrets(tmp_path):
    proc = _cli("config", env={"NEWSWATCH_WEBHOOK_URL": "https://hooks.example.com/T0/B0/xyzsecretpath",
                               "NEWSWATCH_WEBHOOK_SECRET": "whsec_c2VjcmV0c2VjcmV0c2VjcmV0",
                               "NEWSWATCH_REDIS_URL": "redis://:hunter2@db.example.com:6380/0",
                               "NEWSWATCH_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for secret in ("xyzsecretpath", "c2VjcmV0c2VjcmV0c2VjcmV0", "hunter2"):
        assert secret not in out
    assert "NEWSWATCH_SITE_URL" in out and "[default]" in out and "[env]" in out
    assert "db.example.com" in out  # which server is still visible


def test_cli_version_and_help():
    assert _cli("--version").stdout.startswith("newswatch ")
    assert "crawl" in _cli("--help").stdout


def test_unreachable_redis_is_one_line_and_exit_2(tmp_path):
    proc = _cli("crawl", env={"NEWSWATCH_REDIS_URL": "redis://127.0.0.1:9/0", "NEWSWATCH_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "not reachable" in proc.stderr


def _variables_the_tests_read() -> set[str]:
    """Every environment variable the test set-up reads (tests/*.py): a test runner may set any of them."""
    names: set[str] = set()
    for path in (ROOT / "tests").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r'os\.environ(?:\.get)?[\[(]\s*"([A-Z][A-Z0-9_]*)"', text))
        names |= set(re.findall(r'"([A-Z][A-Z0-9_]*)" in os\.environ', text))
    return names


def test_audit_14_test_variables_do_not_break_the_cli(redis_url, test_env):
    """Issue 12 point 14: with the tests' own variables set (as the README tells a test runner to), every
    `newswatch` command still runs: they are not in the product's NEWSWATCH_ namespace check."""
    names = _variables_the_tests_read()
    redis_vars = [name for name in names if "REDIS" in name]
    assert redis_vars, f"the tests read no Redis variable? {sorted(names)}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert any(f"`{name}`" in readme for name in redis_vars)  # the variable the README names is one of them
    env = {**test_env, **{name: redis_url for name in names}}
    for command in (["config"], ["status"]):
        proc = subprocess.run([sys.executable, "-m", "newswatch.cli", *command], env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, (command, proc.stderr)


@pytest.mark.parametrize("url, shown, hidden", [
    ("redis+sentinel://:pw@h1:26379,h2:26380/mymaster", "redis+sentinel://***@h1:26379,h2:26380/mymaster", ":pw@"),
    ("redis+sentinel://u:p%40ss@[::1]:26379,h2/svc/2", "redis+sentinel://***@[::1]:26379,h2/svc/2", "p%40ss"),
    ("redis://:hunter2@db.example.com:6380/0", "redis://***@db.example.com:6380/0", "hunter2"),
    ("redis://:pa/ss@db.example.com/1", "redis://***@db.example.com/1", "pa/ss"),
    ("rediss://db.example.com:notaport/0", "rediss://db.example.com:notaport/0", None),
    ("unix:///run/redis.sock?password=hunter2", "unix:///run/redis.sock?***", "hunter2"),
    ("https://hooks.example.com/T0/B0/xyzsecret", "https://hooks.example.com/***", "xyzsecret"),
])
def test_audit_08_mask_without_parsing_ports(url, shown, hidden):
    from newswatch.masking import mask

    assert mask(url, True, "redis_url") == shown
    if hidden:
        assert hidden not in shown


@pytest.mark.parametrize("cron", ["0 9 * * 7", "0 9 * * 5-7", "0 9 * * 6,7", "0 9 * * sun"])
def test_audit_10_crontab_sunday_as_7_is_accepted(cron, tmp_path):
    """Issue 12 point 10: the load-time check accepts what the scheduler's trigger accepts."""
    proc = _cli("config", env={"NEWSWATCH_CRON": cron, "NEWSWATCH_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert f"{cron}  [env]" in proc.stdout


@pytest.mark.parametrize("cron", ["0 9 * * 8", "0 9 * * 6-2", "61 * * * *", "0 9 * *"])
def test_audit_10_bad_crontab_is_still_one_line_exit_2(cron, tmp_path):
    proc = _cli("config", env={"NEWSWATCH_CRON": cron, "NEWSWATCH_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 2 and "NEWSWATCH_CRON" in proc.stderr and "Traceback" not in proc.stderr
