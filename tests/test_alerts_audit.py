"""Regression tests for the audit of issue 12, alert points (named after the point they cover).

Point 2: every failure of a delivery attempt, whatever raised, counts as one attempt (backoff, age limit,
dead letter). Checked through a real receiver on loopback and a real Redis, for chosen answers that used
to escape the count and, as a property, for any status, headers and body a receiver answers.
Point 16: a WeCom message fits its 4096 bytes in bounded time. Point 9: IPv6 forms that carry an IPv4
address are judged by that address; the GCP IPv6 and EKS metadata addresses are always refused.
Tests named `test_audit_NN_…` fail on the code before the fix; the others guard against over-correcting.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from alerts.safety import check_address
from newswatch import streamids
from newswatch.config import Endpoint, Settings
from newswatch.errors import UnsafeEndpoint
from tests.alerts_support import FAST, Answer, Receiver, item, publish, running_worker
from tests.waiting import wait_for

MAX_ATTEMPTS = 3
PROPERTY_ENV = FAST | {"NEWSWATCH_WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS), "NEWSWATCH_WEBHOOK_TIMEOUT": "0.5",
                       "NEWSWATCH_WEBHOOK_BACKOFF_BASE": "0.02", "NEWSWATCH_WEBHOOK_BACKOFF_CAP": "0.1",
                       "NEWSWATCH_WEBHOOK_CONCURRENCY": "2"}
FORMATS = ("standard", "slack", "feishu", "dingtalk", "wecom")
# an offset this large makes email.utils build a timedelta beyond its range (OverflowError)
OVERFLOW_DATE = "Mon, 01 Jan 2024 00:00:00 +9999999999999"


class Outcome:
    """What became of each item after a worker run against one answer."""

    def __init__(self, client, keys, receiver, ids):
        # Read in the order an item moves (read -> pending -> acknowledged or dead), so an item that moves
        # while this looks is never missed in between; the posts last, since each precedes its outcome.
        [group] = [g for g in client.xinfo_groups(keys.items) if g["name"].decode() == keys.group("default")]
        pending_ids = {r["message_id"].decode()
                       for r in client.xpending_range(keys.items, keys.group("default"), "-", "+", 100)}
        self.dead = {fields[b"id"].decode(): {k.decode(): v.decode() for k, v in fields.items()}
                     for _, fields in client.xrange(keys.dead)}
        entries = {fields[b"id"].decode(): entry.decode() for entry, fields in client.xrange(keys.items)}
        last_read = streamids.parse(group["last-delivered-id"])
        self.unread = {i for i, entry in entries.items() if streamids.parse(entry) > last_read}
        self.pending = {i for i, entry in entries.items() if entry in pending_ids}
        self.retry_records = client.hlen(keys.retry("default"))
        # chat formats carry no webhook-id header: an item is known by its URL, which every format sends
        bodies = [r.body for r in list(receiver.requests)]
        self.posts = {i: sum(f"international/{i.split('-')[1]}.html".encode() in b for b in bodies) for i in ids}
        self.disabled = bool(client.exists(keys.disabled("default")))


class _Records(logging.Handler):
    """The worker's log of one run, shown when the run's outcome is wrong."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(f"{record.relativeCreated:.0f}ms {record.threadName} {record.getMessage()}")


def run_against(redis_url: str, answer: Answer, fmt: str = "standard", n_items: int = 2,
                extra_env: dict | None = None, settled=None) -> Outcome:
    """Publish `n_items`, run one worker against a receiver that always gives `answer`, until every item
    is settled (or an item was posted more often than allowed, which ends the run early as a failure)."""
    prefix = f"nwtest-{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(redis_url)
    try:
        config = Settings.load({"NEWSWATCH_REDIS_URL": redis_url, "NEWSWATCH_KEY_PREFIX": prefix,
                                **PROPERTY_ENV, **(extra_env or {})})
        keys = config.keys
        ids = [f"ddn-{n}" for n in range(n_items)]
        with Receiver(default=answer) as receiver:
            # a rate far above the test's pace: the chat formats' own limits (20/min) are not under test
            endpoint = Endpoint(name="default", url=receiver.url, format=fmt, allow_private=True,
                                rate_per_minute=1_000_000)
            client.xgroup_create(keys.items, keys.group("default"), id="0", mkstream=True)
            publish(client, keys, [item(n) for n in range(n_items)])

            def done():
                outcome = Outcome(client, keys, receiver, ids)
                if any(count > MAX_ATTEMPTS for count in outcome.posts.values()):
                    return outcome  # already wrong: no need to wait for more
                if settled is not None:
                    return outcome if settled(outcome) else None
                for i in ids:
                    acked = i not in outcome.pending and i not in outcome.dead and i not in outcome.unread
                    parked = i in outcome.pending and outcome.disabled
                    if not (acked or parked or i in outcome.dead):
                        return None
                return outcome if outcome.retry_records == 0 or outcome.disabled else None

            records = _Records()
            logging.getLogger("alerts").addHandler(records)
            try:
                with running_worker(client, config, endpoints=[endpoint]):
                    wait_for(done, timeout=20)
            finally:
                logging.getLogger("alerts").removeHandler(records)
            outcome = Outcome(client, keys, receiver, ids)
            outcome.log = records.lines
            return outcome
    finally:
        stale = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if stale:
            client.delete(*stale)
        client.close()


def assert_settled_correctly(outcome: Outcome, status: int) -> None:
    try:
        _check_settled(outcome, status)
    except AssertionError as exc:
        state = (f"posts={outcome.posts} pending={outcome.pending} dead={sorted(outcome.dead)} "
                 f"retry_records={outcome.retry_records} disabled={outcome.disabled}")
        raise AssertionError(f"{exc}\n{state}\n" + "\n".join(getattr(outcome, "log", []))) from None


def _check_settled(outcome: Outcome, status: int) -> None:
    assert not outcome.unread, f"never read: {outcome.unread}"
    for item_id, posts in outcome.posts.items():
        assert posts <= MAX_ATTEMPTS, f"{item_id} was posted {posts} times (at most {MAX_ATTEMPTS} allowed)"
        if item_id in outcome.dead:
            # dead-lettered after counted attempts, one per post, and acknowledged with the move
            assert int(outcome.dead[item_id]["attempts"]) == posts == MAX_ATTEMPTS, outcome.dead[item_id]
            assert outcome.dead[item_id]["error"]
            assert item_id not in outcome.pending
        elif item_id in outcome.pending:
            assert status == 410 and outcome.disabled, f"{item_id} left pending after HTTP {status}"
            assert posts <= 1
        else:  # acknowledged (a 2xx after a failure is possible: a 204 with a body spoils the next read)
            assert 1 <= posts and 200 <= status < 300, f"{item_id} acknowledged after HTTP {status}"
    assert outcome.retry_records == 0 or outcome.disabled


def test_audit_02_retry_after_superscript_digit_counts_attempts(redis_url):
    # "²".isdigit() is true but float("²") fails: it used to reschedule forever, uncounted
    outcome = run_against(redis_url, Answer(429, headers={"Retry-After": "²"}))
    assert_settled_correctly(outcome, 429)
    assert set(outcome.dead) == {"ddn-0", "ddn-1"}


def test_audit_02_retry_after_overflowing_date_counts_attempts(redis_url):
    outcome = run_against(redis_url, Answer(503, headers={"Retry-After": OVERFLOW_DATE}))
    assert_settled_correctly(outcome, 503)
    assert set(outcome.dead) == {"ddn-0", "ddn-1"}


def test_audit_02_chat_platform_odd_error_code_counts_attempts(redis_url):
    # {"errcode": [1]}: an unhashable code used to raise TypeError in the answer's check
    outcome = run_against(redis_url, Answer(200, body=b'{"errcode":[1]}'), fmt="wecom")
    assert_settled_correctly(outcome, 200)
    assert set(outcome.dead) == {"ddn-0", "ddn-1"}
    assert "errcode" in outcome.dead["ddn-0"]["error"] or "error code" in outcome.dead["ddn-0"]["error"]


def test_audit_02_a_failed_attempt_is_recorded_before_its_retry(redis_url):
    # between attempts the count lives in Redis (retried with a counted attempt, not just in memory)
    outcome = run_against(redis_url, Answer(429, headers={"Retry-After": "²"}), n_items=1,
                          extra_env={"NEWSWATCH_WEBHOOK_BACKOFF_BASE": "30", "NEWSWATCH_WEBHOOK_BACKOFF_CAP": "60"},
                          settled=lambda outcome: outcome.retry_records >= 1)
    assert outcome.retry_records == 1 and outcome.posts == {"ddn-0": 1}


_latin1_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40)
_header_names = st.sampled_from(["Retry-After", "Content-Type", "Connection", "X-Anything", "Transfer-Encoding"])
_retry_after = st.sampled_from(["²", "120", "0", "-5", "1e9", "9" * 40, "soon", "", OVERFLOW_DATE,
                                "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 -2359"])
_bodies = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b'{"errcode":[1]}', b'{"errcode":0}', b'{"errcode":{"a":1}}', b'{"code":0}',
                     b'{"code":null}', b'{"StatusCode":"0"}', b'{"ok":false,"error":["x"]}', b"[]", b"null",
                     b'{"errcode":45009}', b'{"code":11232,"msg":7}', b'{"errcode":1.5,"errmsg":{"x":1}}', b"ok"]),
    st.dictionaries(st.sampled_from(["errcode", "code", "StatusCode", "ok", "errmsg", "msg", "error"]),
                    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), _latin1_text,
                              st.lists(st.integers(), max_size=2)), max_size=3)
    .map(lambda d: json.dumps(d).encode()),
)
_headers = st.dictionaries(_header_names, st.one_of(_retry_after, _latin1_text), max_size=3)


# Each example is a real worker run against a real receiver (0.4-1.2 s, most of it the worker's own read
# block and retry pacing), so 20 drawn examples plus the explicit regressions below; with no example
# database in CI every run draws new ones, so the answers covered grow run after run.
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(status=st.one_of(st.sampled_from([200, 204, 301, 400, 404, 410, 429, 500, 503]), st.integers(200, 599)),
       headers=_headers, body=_bodies, fmt=st.sampled_from(FORMATS))
@example(status=429, headers={"Retry-After": "²"}, body=b"", fmt="standard")
@example(status=503, headers={"Retry-After": OVERFLOW_DATE}, body=b"", fmt="slack")
@example(status=200, headers={}, body=b'{"errcode":[1]}', fmt="dingtalk")
@example(status=200, headers={}, body=b'{"code":[1]}', fmt="feishu")
@example(status=410, headers={}, body=b"", fmt="standard")
def test_audit_02_every_answer_ends_acked_dead_or_parked_within_max_attempts(redis_url, status, headers, body, fmt):
    # malformed answers (Transfer-Encoding beside a Content-Length, a 204 with a body) are answers too
    outcome = run_against(redis_url, Answer(status, body=body, headers=headers), fmt=fmt)
    assert_settled_correctly(outcome, status)


def test_audit_16_wecom_message_with_long_title_and_metadata_is_bounded(redis_client, keys, make_settings):
    # Title and metadata alone over WeCom's 4096 bytes: the old cut halved only the lead and never ended.
    items = [item(1, title="美俄會談" * 1000, category="國際" * 800, source="daydaynews"),
             item(2, title="題" * 30_000, summary="長" * 5000),
             item(3, title="x" * 10, url="https://daydaynews.cc/" + "u" * 5000)]
    with Receiver(default=Answer(200, b'{"errcode": 0, "errmsg": "ok"}')) as receiver:
        endpoint = Endpoint(name="default", url=receiver.url, format="wecom", allow_private=True,
                            rate_per_minute=1_000_000)
        settings = make_settings(NEWSWATCH_WEBHOOK_URL=receiver.url, **FAST)
        publish(redis_client, keys, items)
        with running_worker(redis_client, settings, endpoints=[endpoint]):
            assert receiver.wait_count(3)
            assert wait_for(lambda: redis_client.xpending(keys.items, keys.group("default"))["pending"] == 0)
    contents = [r.json["markdown"]["content"] for r in receiver.requests]
    assert len(contents) == 3
    assert all(len(c.encode()) <= 4096 for c in contents)
    assert any(c.startswith("**[美俄會談美俄會談") and "…" in c for c in contents)
    assert any(c.startswith("**[題題") for c in contents)
    assert redis_client.xlen(keys.dead) == 0


@pytest.mark.parametrize("address, kind", [
    ("64:ff9b::7f00:1", "loopback"), ("64:ff9b::a00:1", "private"), ("64:ff9b::c0a8:101", "private"),
    ("64:ff9b::a9fe:101", "link-local"), ("::127.0.0.1", "loopback"), ("::10.0.0.1", "private"),
    ("2002:7f00:1::1", "loopback"), ("64:ff9b:1::808:808", "non-global"),
])
def test_audit_09_ipv6_forms_carrying_a_private_ipv4_are_refused(address, kind):
    # NAT64 and the deprecated IPv4-compatible form deliver to the IPv4 address in their last 32 bits
    with pytest.raises(UnsafeEndpoint, match=kind):
        check_address(address, allow_private=False)
    assert check_address(address, allow_private=True)  # a local receiver may still be allowed


@pytest.mark.parametrize("address", ["fd20:ce::254", "169.254.170.23", "::ffff:169.254.170.23",
                                     "64:ff9b::a9fe:a9fe", "::169.254.169.254", "64:ff9b::6464:64c8"])
def test_audit_09_metadata_addresses_are_refused_even_when_private_is_allowed(address):
    with pytest.raises(UnsafeEndpoint, match="metadata"):
        check_address(address, allow_private=True)


def test_nat64_and_6to4_carrying_a_public_ipv4_still_pass():
    for address in ("64:ff9b::808:808", "2002:808:808::1", "8.8.8.8", "2606:4700:4700::1111"):
        assert check_address(address, allow_private=False)


@pytest.mark.parametrize("url, said", [("http://[64:ff9b::a9fe:a9fe]/latest", "metadata"),
                                       ("http://[::127.0.0.1]:9/hook", "loopback"),
                                       ("http://[fd20:ce::254]/computeMetadata", "metadata")])
def test_audit_09_alerts_command_refuses_them_with_exit_2(test_env, url, said):
    # through the command line, with a deadline: a command that accepted the address would run forever
    try:
        done = subprocess.run([sys.executable, "-m", "newswatch.cli", "alerts"], capture_output=True, text=True,
                              env=test_env | {"NEWSWATCH_WEBHOOK_URL": url}, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`newswatch alerts` accepted {url} and kept running")
    assert done.returncode == 2, done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr
