"""What the worker does with each kind of answer, against real receivers on loopback and a real Redis."""

from __future__ import annotations

import json

import pytest
import redis

from alerts.command import alerts_command
from alerts.delivery import retry_after_seconds
from alerts.runner import EndpointRunner
from newswatch.errors import EndpointGone, UnsafeEndpoint
from tests.alerts_support import FAST, Answer, Receiver, item, publish, running_worker
from tests.loopback import free_port
from tests.waiting import wait_for


def pending(client, keys, name="default") -> int:
    return client.xpending(keys.items, keys.group(name))["pending"]


def dead_letters(client, keys) -> list[dict]:
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in client.xrange(keys.dead)]


def test_500_then_200_is_retried_then_acknowledged(redis_client, keys, make_settings):
    with Receiver(plan=[Answer(500), Answer(500)]) as receiver:
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, **FAST)
        publish(redis_client, keys, [item(1)])
        with running_worker(redis_client, settings) as worker:
            assert receiver.wait_count(3)
            assert wait_for(lambda: pending(redis_client, keys) == 0)
    assert receiver.ids() == ["ddn-1"] * 3
    assert worker.stats["default"]["delivered"] == 1
    assert worker.stats["default"]["failed_attempts"] == 2
    assert redis_client.hlen(keys.retry("default")) == 0  # the retry record goes with the XACK
    assert dead_letters(redis_client, keys) == []


def test_receiver_down_then_up_gets_every_item(redis_client, keys, make_settings):
    port = free_port()
    receiver = Receiver(port=port)
    settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, **FAST)
    publish(redis_client, keys, [item(n) for n in range(5)])
    with running_worker(redis_client, settings) as worker:
        assert wait_for(lambda: worker.stats["default"]["failed_attempts"] >= 5)
        assert redis_client.hlen(keys.retry("default")) > 0  # the schedule lives in Redis
        receiver.start()
        try:
            assert receiver.wait_ids([f"ddn-{n}" for n in range(5)])
            assert wait_for(lambda: pending(redis_client, keys) == 0)
        finally:
            receiver.stop()
    assert dead_letters(redis_client, keys) == []


def test_429_retry_after_is_honoured(redis_client, keys, make_settings):
    with Receiver(plan=[Answer(429, headers={"Retry-After": "1"})]) as receiver:
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url,
                                 **(FAST | {"NEWSWATCH_WEBHOOK_BACKOFF_BASE": "0.01", "NEWSWATCH_WEBHOOK_BACKOFF_CAP": "5"}))
        publish(redis_client, keys, [item(1)])
        with running_worker(redis_client, settings):
            assert wait_for(lambda: redis_client.hget(keys.retry("default"), _first_entry(redis_client, keys)))
            state = json.loads(redis_client.hget(keys.retry("default"), _first_entry(redis_client, keys)))
            assert receiver.wait_count(2)
    # without Retry-After the next attempt would come within 0.01 s; the receiver asked for 1 s
    assert state["attempts"] == 1 and state["error"] == "HTTP 429"
    assert state["next_at"] - state["first_at"] >= 1.0


def test_retry_after_is_capped(redis_client, keys, make_settings):
    with Receiver(plan=[Answer(503, headers={"Retry-After": "86400"})]) as receiver:
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, **FAST)  # cap 0.5 s
        publish(redis_client, keys, [item(1)])
        with running_worker(redis_client, settings):
            assert receiver.wait_count(2, timeout=15)


def _first_entry(client, keys):
    return client.xrange(keys.items, count=1)[0][0]


def test_retry_after_header_forms():
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_redirect_is_a_failure_and_never_followed(redis_client, keys, make_settings):
    with Receiver() as target, Receiver(default=Answer(302, headers={"Location": target.url})) as receiver:
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, NEWSWATCH_WEBHOOK_MAX_ATTEMPTS="2", **FAST)
        publish(redis_client, keys, [item(1)])
        with running_worker(redis_client, settings):
            assert wait_for(lambda: len(dead_letters(redis_client, keys)) == 1)
        assert target.requests == []
    assert len(receiver.requests) == 2
    [dead] = dead_letters(redis_client, keys)
    assert "302" in dead["error"] and dead["id"] == "ddn-1" and dead["attempts"] == "2"
    assert pending(redis_client, keys) == 0  # dead-lettered items are acknowledged with the move


def test_hung_receiver_times_out_and_is_retried(redis_client, keys, make_settings):
    with Receiver(plan=[Answer(200, hang=30)]) as receiver:
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url,
                                 **(FAST | {"NEWSWATCH_WEBHOOK_TIMEOUT": "0.3"}))
        publish(redis_client, keys, [item(1)])
        with running_worker(redis_client, settings) as worker:
            assert receiver.wait_count(2)
            assert wait_for(lambda: pending(redis_client, keys) == 0)
    assert receiver.ids() == ["ddn-1", "ddn-1"]
    assert worker.stats["default"]["failed_attempts"] == 1


def test_410_disables_the_endpoint_and_keeps_its_items(redis_client, keys, make_settings, caplog):
    with Receiver(plan=[Answer(410)]) as receiver:
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, **FAST)
        publish(redis_client, keys, [item(1)])
        with running_worker(redis_client, settings):
            assert wait_for(lambda: redis_client.exists(keys.disabled("default")))
            publish(redis_client, keys, [item(2)])
            # while disabled: nothing more is sent and nothing is acknowledged
            assert not receiver.wait_count(2, timeout=2)
        assert pending(redis_client, keys) in (1, 2)  # the second may have been read before the 410
        assert redis_client.xlen(keys.items) == 2
        assert any(r.levelname == "ERROR" and "410" in r.getMessage() for r in caplog.records)
        assert alerts_command(settings, enable="default") == 0
        assert not redis_client.exists(keys.disabled("default"))
        with running_worker(redis_client, settings):
            assert receiver.wait_ids(["ddn-1", "ddn-2"])
            assert wait_for(lambda: pending(redis_client, keys) == 0)
    assert dead_letters(redis_client, keys) == []


def test_enable_unknown_endpoint_is_exit_2(make_settings):
    assert alerts_command(make_settings(), enable="nope") == 2


def test_dead_letter_then_replay(redis_client, keys, make_settings, caplog):
    with Receiver(default=Answer(500)) as receiver:
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, NEWSWATCH_WEBHOOK_MAX_ATTEMPTS="3", **FAST)
        publish(redis_client, keys, [item(1), item(2)])
        with running_worker(redis_client, settings):
            assert wait_for(lambda: len(dead_letters(redis_client, keys)) == 2)
        assert receiver.ids().count("ddn-1") == 3
        assert any(r.levelname == "ERROR" and "dead letters" in r.getMessage() for r in caplog.records)
        assert pending(redis_client, keys) == 0
        assert {d["id"] for d in dead_letters(redis_client, keys)} == {"ddn-1", "ddn-2"}
        # replay while the receiver still fails: kept, exit 1
        assert alerts_command(settings, replay_dead=True) == 1
        assert len(dead_letters(redis_client, keys)) == 2
        receiver.default = Answer(200)
        before = len(receiver.requests)
        assert alerts_command(settings, replay_dead=True) == 0
    assert sorted(receiver.ids()[before:]) == ["ddn-1", "ddn-2"]
    assert json.loads(receiver.requests[-1].body)["data"]["id"] in {"ddn-1", "ddn-2"}
    assert dead_letters(redis_client, keys) == []


def test_malformed_item_goes_to_dead_letters(redis_client, keys, make_settings):
    with Receiver() as receiver:
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, **FAST)
        redis_client.xadd(keys.items, {"data": "{not json", "id": "broken", "url": "x"})
        publish(redis_client, keys, [item(1)])
        with running_worker(redis_client, settings):
            assert receiver.wait_ids(["ddn-1"])
            assert wait_for(lambda: len(dead_letters(redis_client, keys)) == 1)
    assert dead_letters(redis_client, keys)[0]["id"] == "broken"


ITEM_TEXTS = [
    json.dumps(item(7), ensure_ascii=False, sort_keys=True),  # as the crawler queues it
    '{"id": "x", "views": 18446744073709551616, "n": -9223372036854775809, "m": 18446744073709551615}',
    '{"id": "x", "score": NaN, "low": -Infinity}',  # Python's reader accepts these, orjson does not
    '{"id": "x", "big": 1e400, "title": "\\ud800 lone"}',
    '{"id": "x", "id": "y", "f": 9.223372036854776e+18, "g": -0.0, "h": 0.1, "t": "\\ud83d\\ude00 é"}',
    ' {"id": 12, "category": null, "title": ["a"], "published_at": true} ',
]


@pytest.mark.parametrize("text", ITEM_TEXTS)
def test_items_read_as_the_json_module_reads_them(text):
    """orjson reads items first (alerts/attempt.py); what it reads otherwise, json.loads decides."""
    from alerts.attempt import read_item

    got, want = read_item(text), json.loads(text)
    assert list(got) == list(want)
    assert [repr(v) for v in got.values()] == [repr(v) for v in want.values()]  # 2**64 stays an int, NaN a float


@pytest.mark.parametrize("text", ITEM_TEXTS)
def test_items_read_from_bytes_as_from_their_text(text):
    """The delivery threads keep an entry's item as the bytes Redis sent (alerts/packed_read.py)."""
    from alerts.attempt import read_entry

    got, body = read_entry(text.encode())
    assert body == text.encode()  # sent as it is
    assert [repr(v) for v in got.values()] == [repr(v) for v in json.loads(text).values()]


def test_bytes_that_are_not_utf8_are_read_as_their_text_with_replacements():
    from alerts.attempt import read_entry

    raw = b'{"id": "x", "title": "bad \xff byte"}'
    item, body = read_entry(raw)
    assert body == raw.decode("utf-8", "replace") and item["title"] == "bad \ufffd byte"
    with pytest.raises(ValueError):
        read_entry(b"\xef\xbb\xbf{}")  # a UTF-8 BOM: refused, as json.loads refuses it in text


def test_an_item_that_is_not_utf8_is_delivered_as_before(redis_client, keys, make_settings):
    """Undecodable bytes in an entry's item: delivered with U+FFFD in their place, as when entries were
    read as text."""
    with Receiver() as receiver:
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, **FAST)
        redis_client.xadd(keys.items, {"data": b'{"id": "odd", "title": "x\xffy"}', "id": "odd", "url": "x"})
        publish(redis_client, keys, [item(1)])
        with running_worker(redis_client, settings):
            assert receiver.wait_ids(["odd", "ddn-1"])
    odd = next(r for r in receiver.requests if r.headers["webhook-id"] == "odd")
    assert b'"data":{"id": "odd", "title": "x\xef\xbf\xbdy"},' in odd.body
    assert json.loads(odd.body)["summary"] == "x\ufffdy"


@pytest.mark.parametrize("text", ["[1]", '"x"', "1", "null", "{not json", '{"a": 1} x', "", "\ufeff{}"])
def test_an_item_that_is_no_json_object_is_refused(text):
    from alerts.attempt import read_item

    with pytest.raises(ValueError):
        read_item(text)


def test_items_are_read_by_orjson():
    orjson = pytest.importorskip("orjson")
    from alerts import attempt

    assert attempt.orjson is orjson  # the fast path (json.loads took 5-15 µs of GIL time an item, orjson 2)


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "[::1]", "169.254.1.1", "localhost"])
def test_private_addresses_are_refused_unless_allowed(redis_client, keys, make_settings, host):
    from alerts.worker import AlertWorker

    settings = make_settings(NEWSWATCH_WEBHOOK_URL=f"http://{host}:9/hook",
                             NEWSWATCH_WEBHOOK_MAX_ATTEMPTS="1", NEWSWATCH_WEBHOOK_BACKOFF_BASE="0.01")
    if host != "localhost":  # a literal address is refused at start
        with pytest.raises(UnsafeEndpoint):
            AlertWorker(redis_client, settings)
        return
    # a name is checked after resolving, on the address that would be connected to
    publish(redis_client, keys, [item(1)])
    with running_worker(redis_client, settings):
        assert wait_for(lambda: len(dead_letters(redis_client, keys)) == 1)
    assert "loopback" in dead_letters(redis_client, keys)[0]["error"]


def test_allowed_private_receiver_works_but_metadata_never(redis_client, keys, make_settings):
    from alerts.safety import check_address

    assert str(check_address("127.0.0.1", allow_private=True)) == "127.0.0.1"
    for address in ("169.254.169.254", "100.100.100.200", "::ffff:169.254.169.254"):
        with pytest.raises(UnsafeEndpoint, match="metadata"):
            check_address(address, allow_private=True)
    with pytest.raises(UnsafeEndpoint):
        check_address("::ffff:10.0.0.1", allow_private=False)
    assert str(check_address("8.8.8.8", allow_private=False)) == "8.8.8.8"


def test_alerts_command_refuses_unsafe_endpoint_with_exit_2(make_settings, capsys):
    settings = make_settings(NEWSWATCH_WEBHOOK_URL="http://169.254.169.254/latest/meta-data")
    assert alerts_command(settings) == 2
    assert "metadata" in capsys.readouterr().err


def test_replay_takes_the_runners_delivery_path(redis_client, keys, make_settings, tmp_path):
    # --replay-dead sends as the runner does: an odd answer is one failed attempt (kept, no traceback),
    # a 410 disables the endpoint as a 410 to the runner does.
    with Receiver(default=Answer(500)) as receiver:
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, NEWSWATCH_WEBHOOK_MAX_ATTEMPTS="1", **FAST)
        publish(redis_client, keys, [item(1)])
        with running_worker(redis_client, settings):
            assert wait_for(lambda: len(dead_letters(redis_client, keys)) == 1)
        receiver.default = Answer(429, headers={"Retry-After": "²"})
        assert alerts_command(settings, replay_dead=True) == 1
        assert len(dead_letters(redis_client, keys)) == 1
        receiver.default = Answer(410)
        assert alerts_command(settings, replay_dead=True) == 1
        assert redis_client.exists(keys.disabled("default"))
        assert len(dead_letters(redis_client, keys)) == 1
        before = len(receiver.requests)
        assert alerts_command(settings, replay_dead=True) == 1  # disabled: kept without sending
        assert len(receiver.requests) == before


class _RacedExists(redis.Redis):
    """A real client whose EXISTS, once it has Redis's answer, first runs `race`: another thread acting
    while the question was in flight (here: a delivery thread meeting a 410)."""

    race = None

    def exists(self, *names):
        answer = super().exists(*names)
        race, self.race = self.race, None
        if race is not None:
            race()
        return answer


def test_a_410_met_while_the_disabled_flag_is_checked_is_not_undone(redis_url, keys, make_settings):
    # The housekeeping thread asked Redis "disabled?" (no) just before a delivery thread's 410 disabled
    # the endpoint; writing its stale "no" afterwards re-enabled it, and the item that met the 410 was due
    # at once, so it was posted again (tests/test_alerts_audit.py caught it, now and then).
    settings = make_settings(NEWSWATCH_WEBHOOK_URL="http://127.0.0.1:9/hook", NEWSWATCH_WEBHOOK_ALLOW_PRIVATE="1")
    client = _RacedExists.from_url(redis_url)
    runner = EndpointRunner(client, settings, settings.endpoints[0], "race")
    client.race = lambda: runner._disable(EndpointGone("HTTP 410 Gone"))
    try:
        assert runner._is_disabled()
        assert runner._disabled  # what the delivery threads read before taking the next item
        assert client.exists(keys.disabled("default"))
    finally:
        client.close()
