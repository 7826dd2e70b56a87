"""Secrets never reach Sentry: events from real processes, received by the loopback envelope receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.sentry_receiver import SentryReceiver

PASSWORD = "Zq9-sentinel-Xk7"  # distinctive, so its absence from an envelope means something
SENTINEL_URL = f"redis+sentinel://:{PASSWORD}@127.0.0.1:1,127.0.0.1:2/mymaster"
WEBHOOK_SECRET = "whsec_QUJDREVGR0hJSktMTU5PUA=="
WEBHOOK_URL = "https://hooks.example.com/services/T0/B0/tokenPATHxyz123"


def _env(sentry: SentryReceiver, tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_") and k != "SENTRY_DSN"}
    env.update({"SENTRY_DSN": sentry.dsn, "NEWSWATCH_DATA_DIR": str(tmp_path / "data"),
                "NEWSWATCH_REDIS_URL": SENTINEL_URL, "NEWSWATCH_WEBHOOK_URL": WEBHOOK_URL,
                "NEWSWATCH_WEBHOOK_SECRET": WEBHOOK_SECRET, **extra})
    return env


def _raw(sentry: SentryReceiver) -> str:
    return json.dumps(sentry.items(), default=repr)


def test_audit_08_sentinel_url_commands_do_not_crash_or_leak(tmp_path):
    """Issue 12 point 8: with a multi-host Sentinel URL, `config` shows it masked, `status` says the
    sentinels are unreachable in one line; neither ends in a traceback, nor sends an event with the password."""
    with SentryReceiver() as sentry:
        env = _env(sentry, tmp_path)
        config = subprocess.run([sys.executable, "-m", "newswatch.cli", "config"], env=env,
                                capture_output=True, text=True, timeout=60)
        assert config.returncode == 0, config.stderr
        assert "redis+sentinel://***@127.0.0.1:1,127.0.0.1:2/mymaster" in config.stdout
        status = subprocess.run([sys.executable, "-m", "newswatch.cli", "status"], env=env,
                                capture_output=True, text=True, timeout=120)
        assert status.returncode == 2, status.stderr
        assert len(status.stderr.strip().splitlines()) == 1 and "Traceback" not in status.stderr
        assert "127.0.0.1:1,127.0.0.1:2" in status.stderr and "not reachable" in status.stderr
        for out in (config.stdout, config.stderr, status.stdout, status.stderr, _raw(sentry)):
            assert PASSWORD not in out and "tokenPATHxyz123" not in out and WEBHOOK_SECRET not in out


# A crash in a function that holds the secrets the way connection and delivery code does: the password
# alone, a URL's userinfo and host list, a split URL's repr, a header dict, the Settings object.
CRASH = textwrap.dedent("""
    import logging, sys
    from urllib.parse import urlsplit
    from newswatch.config import Settings
    from newswatch.observability import init_sentry, flush
    from newswatch.sentinel_url import parse_sentinel_url

    settings = Settings.load()
    init_sentry(settings, component="test")

    def connect(url, hook):
        service, password = parse_sentinel_url(url)[1], parse_sentinel_url(url)[4]
        userinfo = url.split("//", 1)[1].rpartition("@")[0]
        netloc = url.split("//", 1)[1].split("/")[0]
        parts = urlsplit(url)
        headers = {"X-Signing-Key": settings.webhook_secret.split()[0], "X-Path": urlsplit(hook).path}
        kept = "visible-" + service
        raise RuntimeError("cannot reach the sentinels")

    try:
        connect(settings.redis_url, settings.webhook_url)
    except RuntimeError:
        logging.getLogger("newswatch.test").exception("revisit failed")
    flush()
""")


def test_audit_08_sentry_drops_secrets_from_frame_locals_by_value(tmp_path):
    with SentryReceiver() as sentry:
        proc = subprocess.run([sys.executable, "-c", CRASH], env=_env(sentry, tmp_path),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert sentry.wait_for(lambda: sentry.events())
        (event,) = sentry.events()
        frames = [frame for value in event["exception"]["values"] for frame in value["stacktrace"]["frames"]]
        local = next(frame["vars"] for frame in frames if frame.get("function") == "connect")
        # the frame is there with its locals: what holds no secret is kept, what holds one is dropped
        # (Sentry keeps the first 10 locals: the function has 9)
        assert local["kept"] == "'visible-mymaster'" and local["service"] == "'mymaster'"
        for name in ("password", "userinfo", "netloc", "parts", "url", "hook", "headers"):
            assert name in local
        raw = _raw(sentry)
        assert "revisit failed" in raw
        for secret in (PASSWORD, WEBHOOK_SECRET, WEBHOOK_SECRET[len("whsec_"):], "tokenPATHxyz123"):
            assert secret not in raw, secret
