"""Chat-bot formats: each platform's body, its signing, and its in-body error codes (HTTP 200 on failure)."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from alerts.formats import dingtalk_sign, feishu_sign, for_endpoint
from alerts.ratelimit import RateLimiter
from newswatch.config import Endpoint
from newswatch.errors import ConfigError
from tests.alerts_support import FAST, Answer, Receiver, item, publish, running_worker
from tests.waiting import wait_for


def chat_settings(make_settings, tmp_path, receiver, fmt, secret=None, rate=6000):
    lines = ["[[webhooks]]", f'name = "{fmt}bot"', f'url = "{receiver.url}"', f'format = "{fmt}"',
             f"rate_per_minute = {rate}"]
    if secret:
        lines.append(f'secret = "{secret}"')
    path = tmp_path / f"{fmt}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return make_settings(NEWSWATCH_CONFIG=str(path), **FAST)


def run_one(redis_client, keys, settings, receiver, n_requests, it=None):
    name = settings.endpoints[0].name
    publish(redis_client, keys, [it or item(1)])
    with running_worker(redis_client, settings) as worker:
        assert receiver.wait_count(n_requests)
        assert wait_for(lambda: redis_client.xpending(keys.items, keys.group(name))["pending"] == 0)
    return worker.stats[name]


def test_slack_body_and_ok_answer(redis_client, keys, make_settings, tmp_path):
    with Receiver(plan=[Answer(200, b'{"ok": false, "error": "invalid_blocks"}')], default=Answer(200, b"ok")) as receiver:
        settings = chat_settings(make_settings, tmp_path, receiver, "slack")
        stats = run_one(redis_client, keys, settings, receiver, 2, item(1, title="A & B <talks>"))
    assert stats == {"delivered": 1, "failed_attempts": 1, "dead": 0, "claimed": 0}
    body = receiver.requests[-1].json
    section = body["blocks"][0]["text"]
    assert section["type"] == "mrkdwn"
    assert "<https://daydaynews.cc/zh-hant/international/1.html|A &amp; B &lt;talks&gt;>" in section["text"]
    assert "國際" in section["text"] and body["text"]


def test_feishu_signature_and_error_code(redis_client, keys, make_settings, tmp_path):
    secret = "feishu-sign-secret"
    with Receiver(plan=[Answer(200, b'{"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}')],
                  default=Answer(200, b'{"code": 0, "msg": "success", "data": {}}')) as receiver:
        settings = chat_settings(make_settings, tmp_path, receiver, "feishu", secret)
        before = int(time.time())
        stats = run_one(redis_client, keys, settings, receiver, 2)
        after = int(time.time())
    assert stats["delivered"] == 1 and stats["failed_attempts"] == 1
    body = receiver.requests[-1].json
    assert before <= int(body["timestamp"]) <= after  # seconds, taken when the message was signed
    assert body["sign"] == feishu_sign(body["timestamp"], secret)  # the recipe is checked against a vector below
    assert body["msg_type"] == "post"
    post = body["content"]["post"]["zh_cn"]
    assert post["title"] == "美俄會談 第1輪"
    assert {"tag": "a", "text": "閱讀原文", "href": item(1)["url"]} in [c for row in post["content"] for c in row]


def test_dingtalk_signature_in_query_and_errcode(redis_client, keys, make_settings, tmp_path):
    secret = "SECabcdef0123456789"
    with Receiver(plan=[Answer(200, b'{"errcode": 310000, "errmsg": "keywords not in content"}')],
                  default=Answer(200, b'{"errcode": 0, "errmsg": "ok"}')) as receiver:
        settings = chat_settings(make_settings, tmp_path, receiver, "dingtalk", secret)
        before = int(time.time() * 1000)
        stats = run_one(redis_client, keys, settings, receiver, 2)
        after = int(time.time() * 1000)
    assert stats["delivered"] == 1 and stats["failed_attempts"] == 1
    request = receiver.requests[-1]
    query = parse_qs(urlsplit(request.path).query)
    timestamp = query["timestamp"][0]
    assert before <= int(timestamp) <= after  # milliseconds, taken when the message was signed
    # the sign is URL-encoded in the query (base64 has + / =); the recipe is checked against a vector below
    assert unquote(request.path.split("sign=")[1]) == dingtalk_sign(timestamp, secret)
    body = request.json
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "美俄會談 第1輪"
    assert "[閱讀原文](https://daydaynews.cc/zh-hant/international/1.html)" in body["markdown"]["text"]


def test_chat_signatures_match_the_platforms_documented_recipes():
    """Feishu and DingTalk publish the recipe (and sample code) but no test vector. These expected values
    were computed once, independently of newswatch, with Python's hmac from the documented recipes, and are
    written out as literals:
      Feishu   (open.feishu.cn, custom bot, 签名校验): base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg=""))
      DingTalk (open.dingtalk.com, custom robot, 加签): base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}")),
               then URL-encoded into the query
    Feishu's timestamp is in seconds (its docs' example 1599360473), DingTalk's in milliseconds."""
    assert feishu_sign("1599360473", "feishu-sign-secret") == "gOBPHsXPDSjtNCrAeWyEj8TVU2uuKBAk37PMHACHybw="
    assert dingtalk_sign("1577262236757", "SECabcdef0123456789") == "aeT2NCEbBuTaCh6Lz343+5PsAEVjV1g25dFap7x9BIw="


def test_wecom_rate_limit_code_is_retried_and_body_fits(redis_client, keys, make_settings, tmp_path):
    with Receiver(plan=[Answer(200, b'{"errcode": 45009, "errmsg": "api freq out of limit"}')],
                  default=Answer(200, b'{"errcode": 0, "errmsg": "ok"}')) as receiver:
        settings = chat_settings(make_settings, tmp_path, receiver, "wecom")
        stats = run_one(redis_client, keys, settings, receiver, 2, item(1, summary="長" * 5000))
    assert stats["delivered"] == 1 and stats["failed_attempts"] == 1
    content = receiver.requests[-1].json["markdown"]["content"]
    assert len(content.encode()) <= 4096
    assert "[美俄會談 第1輪](https://daydaynews.cc/zh-hant/international/1.html)" in content


def test_chat_answer_without_error_code_is_not_a_delivery(redis_client, keys, make_settings, tmp_path):
    with Receiver(default=Answer(200, b"<html>proxy error</html>")) as receiver:
        settings = chat_settings(make_settings, tmp_path, receiver, "dingtalk")
        settings = settings.with_overrides(webhook_max_attempts="2")
        publish(redis_client, keys, [item(1)])
        with running_worker(redis_client, settings):
            assert wait_for(lambda: redis_client.xlen(keys.dead) == 1)
    error = redis_client.xrange(keys.dead)[0][1][b"error"].decode()
    assert "not JSON" in error


def test_dingtalk_default_rate_is_20_a_minute(redis_client, keys):
    fmt = for_endpoint(Endpoint(name="d", url="https://oapi.dingtalk.com/robot/send?access_token=x", format="dingtalk"))
    assert fmt.rate_per_minute == 20
    limiter = RateLimiter(redis_client, keys.rate("d"), fmt.rate_per_minute)
    waits, next_free = [], []
    for _ in range(3):
        waits.append(limiter.reserve())
        next_free.append(int(redis_client.get(keys.rate("d"))))  # the slot the next sender gets (ms)
    # slots exactly 3 s apart: the first message goes at once, each further one waits for its slot
    assert waits[0] == 0 and 0 < waits[1] < waits[2]
    assert [next_free[1] - next_free[0], next_free[2] - next_free[1]] == [3000, 3000]


def test_platform_secrets_are_single(tmp_path):
    with pytest.raises(ConfigError, match="one secret"):
        for_endpoint(Endpoint(name="f", url="https://open.feishu.cn/x", format="feishu", secrets=("a", "b")))
    with pytest.raises(ConfigError, match="NEWSWATCH_WEBHOOK_SECRET"):
        for_endpoint(Endpoint(name="default", url="https://example.com/x", secrets=("plain",)))


def test_formats_carry_no_secret_into_repr():
    endpoint = Endpoint(name="f", url="https://oapi.dingtalk.com/robot/send?access_token=tok123", format="dingtalk",
                        secrets=("SECsecret",))
    assert "tok123" not in repr(endpoint) and "SECsecret" not in repr(endpoint)
    assert json.dumps(for_endpoint(endpoint).request(item(1), "ddn-1", "2025-01-01T00:00:00Z").headers).find("SEC") == -1


def test_failures_never_log_the_url_token_or_secret(redis_client, keys, make_settings, tmp_path, caplog):
    caplog.set_level("DEBUG")
    with Receiver(default=Answer(500)) as receiver:
        receiver_url = receiver.url
        path = tmp_path / "d.toml"
        path.write_text(f'[[webhooks]]\nname = "ding"\nurl = "{receiver_url}?access_token=tok-topsecret-1"\n'
                        f'format = "dingtalk"\nsecret = "SEC-very-secret-2"\nrate_per_minute = 6000\n', encoding="utf-8")
        settings = make_settings(NEWSWATCH_CONFIG=str(path), NEWSWATCH_WEBHOOK_MAX_ATTEMPTS="2", **FAST)
        publish(redis_client, keys, [item(1)])
        with running_worker(redis_client, settings):
            assert wait_for(lambda: redis_client.xlen(keys.dead) == 1)
    assert "access_token=tok-topsecret-1" in receiver.requests[0].path  # it was used...
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "dead letters" in text
    assert "tok-topsecret-1" not in text and "SEC-very-secret-2" not in text  # ...and never logged
    assert b"tok-topsecret-1" not in b"".join(v for _, f in redis_client.xrange(keys.dead) for v in f.values())


@pytest.mark.parametrize("fmt, rejections, ok", [
    ("wecom", [b'{"errcode": false}', b'{"errcode": 1, "errmsg": "invalid webhook url"}', b'{"errcode": 0.0}',
               b'{"errcode": "0"}'], b'{"errcode": 0, "errmsg": "ok"}'),
    ("dingtalk", [b'{"errcode": false, "errmsg": "ok"}', b'{"errcode": null}'], b'{"errcode": 0, "errmsg": "ok"}'),
    ("feishu", [b'{"code": false, "msg": "success"}', b'{"StatusCode": false}'], b'{"code": 0, "msg": "success"}'),
])
def test_only_the_integer_zero_is_a_chat_delivery(redis_client, keys, make_settings, tmp_path, fmt, rejections, ok):
    """`False == 0` in Python: a body whose code is a boolean (or 0.0, "0", null) is not the documented
    success value, so each of these answers is a failed attempt and only the last, integer 0, delivers."""
    with Receiver(plan=[Answer(200, body) for body in rejections], default=Answer(200, ok)) as receiver:
        settings = chat_settings(make_settings, tmp_path, receiver, fmt)
        stats = run_one(redis_client, keys, settings, receiver, len(rejections) + 1)
    assert stats["delivered"] == 1 and stats["failed_attempts"] == len(rejections)
    assert len(receiver.requests) == len(rejections) + 1


def test_event_time_is_the_entry_ids_millisecond_in_utc():
    from alerts.formats import event_time

    # one after the other in the same second (the cached part), then another second, then back
    ids = ["1740823205000-0", "1740823205001-3", "1740823205999-0", "1740823206000-0", "0-0", "1740823205042-1"]
    assert [event_time(i) for i in ids] == [
        "2025-03-01T10:00:05.000Z", "2025-03-01T10:00:05.001Z", "2025-03-01T10:00:05.999Z",
        "2025-03-01T10:00:06.000Z", "1970-01-01T00:00:00.000Z", "2025-03-01T10:00:05.042Z"]
