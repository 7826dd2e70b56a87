"""Standard Webhooks deliveries, verified with the reference `standardwebhooks` package."""

from __future__ import annotations

import base64
import json

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from alerts.signing import Signer
from newswatch.errors import ConfigError
from tests.alerts_support import FAST, Receiver, item, publish, running_worker

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"fedcba9876543210fedcba9876543210").decode()


def test_delivery_verifies_with_the_reference_library(redis_client, keys, make_settings):
    with Receiver() as receiver:
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, NEWSWATCH_WEBHOOK_SECRET=SECRET, **FAST)
        publish(redis_client, keys, [item(1)])
        with running_worker(redis_client, settings):
            assert receiver.wait_count(1)
    request = receiver.requests[0]
    payload = Webhook(SECRET).verify(request.body, request.headers)
    assert payload["type"] == "article.new"
    assert payload["data"] == item(1)
    assert "美俄會談 第1輪" in payload["summary"]
    assert request.headers["webhook-id"] == "ddn-1"
    assert request.headers["content-type"].startswith("application/json")
    # a tampered body must not verify: the signature covers the body
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(request.body.replace(b"ddn-1", b"ddn-2"), request.headers)


def test_rotation_signs_with_every_secret(redis_client, keys, make_settings):
    with Receiver() as receiver:
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url,
                                 NEWSWATCH_WEBHOOK_SECRET=f"{SECRET} {OLD_SECRET}", **FAST)
        publish(redis_client, keys, [item(2)])
        with running_worker(redis_client, settings):
            assert receiver.wait_count(1)
    request = receiver.requests[0]
    assert len(request.headers["webhook-signature"].split()) == 2
    for secret in (SECRET, OLD_SECRET):
        assert Webhook(secret).verify(request.body, request.headers)["data"]["id"] == "ddn-2"
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(request.body, request.headers)


def test_retries_keep_the_id_and_refresh_the_timestamp(redis_client, keys, make_settings):
    from tests.alerts_support import Answer

    with Receiver(plan=[Answer(500)]) as receiver:
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, NEWSWATCH_WEBHOOK_SECRET=SECRET,
                                 **(FAST | {"NEWSWATCH_WEBHOOK_BACKOFF_BASE": "2", "NEWSWATCH_WEBHOOK_BACKOFF_CAP": "2"}))
        publish(redis_client, keys, [item(3)])
        with running_worker(redis_client, settings):
            assert receiver.wait_count(2)
    first, second = receiver.requests[:2]
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "ddn-3"
    assert first.body == second.body
    # backoff base 2 s with equal jitter: the retry comes at least 1 s later, in a later second
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    for request in (first, second):
        Webhook(SECRET).verify(request.body, request.headers)


def test_signature_matches_the_standard_webhooks_test_vector():
    """The example the Standard Webhooks reference libraries sign in their own tests
    (standard-webhooks/standard-webhooks, libraries/go/webhook_test.go `TestWebhookSign`)."""
    signer = Signer(("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",))
    signature = signer.signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signer_rejects_malformed_secrets_without_echoing_them():
    with pytest.raises(ConfigError) as err:
        Signer(("not-a-whsec-secret-value",))
    assert "not-a-whsec-secret-value" not in str(err.value)
    with pytest.raises(ConfigError, match="base64"):
        Signer(("whsec_!!!notbase64",))
    assert "whsec" not in repr(Signer((SECRET,))).replace("Signer", "")


def test_body_is_json_with_type_timestamp_data_summary(redis_client, keys, make_settings):
    with Receiver() as receiver:
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, **FAST)
        entry = publish(redis_client, keys, [item(4, published_at=None)])[0]
        with running_worker(redis_client, settings):
            assert receiver.wait_count(1)
    body = json.loads(receiver.requests[0].body)
    assert set(body) == {"type", "timestamp", "data", "summary"}
    assert body["data"] == item(4, published_at=None)
    # the item's JSON text exactly as queued: the worker does not encode it a second time
    assert json.dumps(item(4, published_at=None), ensure_ascii=False).encode() in receiver.requests[0].body
    ms = int(entry.split(b"-")[0])
    from datetime import datetime
    assert abs(datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).timestamp() * 1000 - ms) < 1
    assert "webhook-signature" not in receiver.requests[0].headers  # no secret configured: unsigned
