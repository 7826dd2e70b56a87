"""The revisit trigger (interval or crontab, crontab weekdays as cron means them), the Sentry monitor
schedule that matches it, and the Prometheus endpoint's figures."""

from __future__ import annotations

import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from newswatch.crontab import crontab_trigger, crontab_weekdays
from newswatch.history import RunHistory
from newswatch.observability import CronMonitor, monitor_config
from scheduler.schedule import build_trigger

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("field, expected", [
    ("*", "*"),
    ("1", "mon"),
    ("0", "sun"),
    ("7", "sun"),
    ("1-5", "mon,tue,wed,thu,fri"),
    ("5-7", "sun,fri,sat"),
    ("*/2", "sun,tue,thu,sat"),
    ("mon,wed", "mon,wed"),
    ("sat-sun", None),  # runs backwards in cron's numbering: rejected rather than guessed
])
def test_crontab_weekdays_count_from_sunday(field, expected):
    if expected is None:
        with pytest.raises(ValueError):
            crontab_weekdays(field)
    else:
        assert crontab_weekdays(field) == expected


def test_cron_weekday_one_fires_on_monday():
    trigger = crontab_trigger("0 9 * * 1", "Asia/Shanghai")
    start = datetime(2025, 3, 5, 12, 0, tzinfo=SHANGHAI)  # a Wednesday
    fire = trigger.get_next_fire_time(None, start)
    assert fire.strftime("%A %H:%M") == "Monday 09:00"
    assert fire.utcoffset().total_seconds() == 8 * 3600, "evaluated in the configured time zone"


def test_interval_trigger_from_settings(make_settings):
    trigger = build_trigger(make_settings(NEWSWATCH_INTERVAL="120", NEWSWATCH_JITTER="0"))
    start = datetime(2025, 3, 5, 12, 0, tzinfo=SHANGHAI)
    first = trigger.get_next_fire_time(None, start)
    assert (trigger.get_next_fire_time(first, first) - first).total_seconds() == 120


def test_monitor_schedule_matches_the_configuration(make_settings):
    every_ten = monitor_config(make_settings(NEWSWATCH_INTERVAL="600", NEWSWATCH_JITTER="60"))
    assert every_ten["schedule"] == {"type": "interval", "value": 10, "unit": "minute"}
    assert every_ten["checkin_margin"] >= 2, "a run late by its jitter is not missed"
    hourly = monitor_config(make_settings(NEWSWATCH_INTERVAL="7200"))
    assert hourly["schedule"] == {"type": "interval", "value": 2, "unit": "hour"}
    cron = monitor_config(make_settings(NEWSWATCH_CRON="*/15 8-20 * * 1-5", NEWSWATCH_TIMEZONE="Europe/Moscow"))
    assert cron["schedule"] == {"type": "crontab", "value": "*/15 8-20 * * 1-5"}
    assert cron["timezone"] == "Europe/Moscow"


def test_no_dsn_no_checkin(make_settings):
    monitor = CronMonitor(make_settings())
    with monitor.checkin() as revisit:  # a no-op, not an error
        revisit.ok = False
    import sentry_sdk

    assert not sentry_sdk.get_client().is_active()


def test_metrics_export_the_status_figures(redis_client, keys, make_settings):
    from newswatch.metrics import serve

    for n in range(3):
        redis_client.xadd(keys.items, {"data": "{}", "id": str(n), "url": f"u{n}"})
    redis_client.xgroup_create(keys.items, "alerts:hook", id="0")
    redis_client.hset(keys.seen, "u0", 1)
    RunHistory(redis_client, keys, 10).record({"id": "r", "outcome": "empty", "duration": 2.5,
                                               "counts": {"new": 0, "list_pages": 2},
                                               "started_at": "2025-01-01T00:00:00+00:00"})
    server = serve(make_settings(NEWSWATCH_METRICS_PORT="0"), client=lambda: redis_client,
                   leading=lambda: True, addr="127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    finally:
        server.shutdown()
    lines = set(text.splitlines())
    assert "newswatch_redis_up 1.0" in lines
    assert "newswatch_leader 1.0" in lines
    assert "newswatch_stream_length 3.0" in lines
    assert 'newswatch_group_lag{group="alerts:hook"} 3.0' in lines
    assert 'newswatch_group_pending{group="alerts:hook"} 0.0' in lines
    assert "newswatch_seen_urls 1.0" in lines
    assert "newswatch_last_run_success 0.0" in lines
    assert 'newswatch_last_run_count{kind="list_pages"} 2.0' in lines
    assert any(line.startswith("process_resident_memory_bytes") for line in lines)


def test_metrics_report_redis_down(keys, make_settings):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from newswatch.metrics import serve

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    server = serve(make_settings(NEWSWATCH_METRICS_PORT="0"), client=lambda: dead, leading=lambda: False,
                   addr="127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=30) as answer:
            text = answer.read().decode()
    finally:
        server.shutdown()
    assert "newswatch_redis_up 0.0" in text.splitlines()
    assert "newswatch_leader 0.0" in text.splitlines()
