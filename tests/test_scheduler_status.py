"""`newswatch status`: figures read from a real Redis (7.x, and the embedded 6.2 that has no group lag)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from newswatch.connection import EmbeddedRedis, server_version
from newswatch.defaults import Keys
from newswatch.history import RunHistory
from newswatch.status import collect
from scheduler.leader import LeaderLock

STATUS_KEYS = {"runs", "next_run", "leader", "stream", "groups", "dead_letters", "fingerprints", "seen_urls"}


def fill(client: redis.Redis, keys: Keys) -> list[bytes]:
    """Ten items; group `alerts:a` has read 7 and acked 4; group `mine` has read nothing."""
    ids = [client.xadd(keys.items, {"data": json.dumps({"id": str(n)}), "id": str(n), "url": f"u{n}"})
           for n in range(10)]
    client.xgroup_create(keys.items, "alerts:a", id="0")
    client.xgroup_create(keys.items, "mine", id="0")
    read = client.xreadgroup("alerts:a", "worker-1", {keys.items: ">"}, count=7)
    entry_ids = [entry_id for entry_id, _ in read[0][1]]
    client.xack(keys.items, "alerts:a", *entry_ids[:4])
    client.xadd(keys.dead, {"group": "alerts:a", "id": "x", "error": "410"})
    client.hset(keys.seen, mapping={"https://site/a/1.html": 1, "https://site/a/2.html": 2})
    return ids


@pytest.fixture(params=["server", "embedded-6.2"])
def any_redis(request, redis_client, tmp_path):
    if request.param == "server":
        yield redis_client
        return
    server = EmbeddedRedis(tmp_path / "embedded")
    # no retries: a SHUTDOWN that closes the connection is success, not something to retry
    client = redis.Redis.from_url(server.ensure(), retry=Retry(NoBackoff(), 0))
    assert server_version(client) < (7,), "the embedded server is the 6.2 one (no XINFO GROUPS lag)"
    yield client
    client.shutdown(nosave=True)
    client.close()


def test_groups_pending_and_lag_are_computed(any_redis, keys, make_settings):
    ids = fill(any_redis, keys)
    figures = collect(any_redis, make_settings())
    groups = {g["name"]: g for g in figures["groups"]}
    assert groups["alerts:a"]["pending"] == 3
    assert groups["alerts:a"]["lag"] == 3 and groups["alerts:a"]["lag_exact"]
    assert groups["alerts:a"]["consumers"] == 1
    assert groups["mine"]["lag"] == 10 and groups["mine"]["pending"] == 0
    assert figures["stream"] == {"key": keys.items, "length": 10,
                                 "first_id": ids[0].decode(), "last_id": ids[-1].decode()}
    assert figures["dead_letters"] == 1
    assert figures["seen_urls"] == 2


def test_lag_counts_across_pages(redis_client, keys, make_settings, monkeypatch):
    import newswatch.status as status

    monkeypatch.setattr(status, "LAG_PAGE", 3)  # force several XRANGE pages over a small stream
    fill(redis_client, keys)
    groups = {g["name"]: g for g in collect(redis_client, make_settings())["groups"]}
    assert groups["alerts:a"]["lag"] == 3
    redis_client.xgroup_setid(keys.items, "mine", id=redis_client.xrange(keys.items, count=2)[1][0])
    groups = {g["name"]: g for g in collect(redis_client, make_settings())["groups"]}
    assert groups["mine"]["lag"] == 8


def run_status(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "newswatch.cli", "status", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_status_json_has_the_documented_keys(redis_client, keys, test_env):
    fill(redis_client, keys)
    history = RunHistory(redis_client, keys, size=5)
    for n in range(3):
        history.record({"id": f"r{n}", "trigger": "schedule", "outcome": "ok", "counts": {"new": n},
                        "started_at": f"2025-01-01T00:0{n}:00+00:00", "duration": 1.5})
    lock = LeaderLock(redis_client, keys.leader, ttl=30, holder="box:4242:abc")
    assert lock.acquire()
    redis_client.set(keys.next_run, "2030-01-01T00:00:00+00:00")

    done = run_status(test_env, "--json")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert STATUS_KEYS <= set(figures)
    assert [run["id"] for run in figures["runs"]] == ["r2", "r1", "r0"], "newest first"
    assert figures["leader"]["holder"] == "box:4242:abc" and figures["leader"]["pid"] == 4242
    assert figures["next_run"] == "2030-01-01T00:00:00+00:00"
    assert figures["stream"]["length"] == 10
    assert {g["name"] for g in figures["groups"]} == {"alerts:a", "mine"}


def test_status_text_is_readable_and_shows_no_secret(redis_client, keys, test_env):
    fill(redis_client, keys)
    RunHistory(redis_client, keys, size=5).record(
        {"id": "r1", "trigger": "schedule", "outcome": "empty", "counts": {"list_pages": 2, "fetched": 0},
         "started_at": "2025-01-01T00:00:00+00:00", "duration": 2.0})
    env = dict(test_env, NEWSWATCH_WEBHOOK_URL="https://hooks.example/T000/B000/sekrit-token-123",
               NEWSWATCH_WEBHOOK_SECRET="whsec_c2VrcmV0LXNpZ25pbmcta2V5")
    for args in ((), ("--json",)):
        done = run_status(env, *args)
        assert done.returncode == 0, done.stderr
        assert "sekrit-token-123" not in done.stdout and "whsec_" not in done.stdout
    text = run_status(env).stdout
    assert "leader        none" in text
    assert "alerts:a: pending 3, not yet delivered 3, consumers 1" in text
    assert "empty" in text and "list 2" in text


@pytest.fixture
def redis_user(redis_client, key_prefix):
    """A user with a password on the test server (ACL), removed afterwards."""
    name, password = f"{key_prefix}-user", "Pw-" + key_prefix[-8:] + "-secret"
    redis_client.acl_setuser(name, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
                             commands=["+@all"])
    yield name, password
    redis_client.acl_deluser(name)


def test_audit_12_status_prints_the_redis_url_masked(redis_url, redis_user, test_env, tmp_path):
    """Issue 12 point 12: `status` names the server it read (text and JSON), never its password."""
    name, password = redis_user
    host = redis_url.split("://", 1)[1].split("/")[0].rpartition("@")[2]
    env = dict(test_env, NEWSWATCH_REDIS_URL=f"redis://{name}:{password}@{host}/0")
    text, as_json = run_status(env), run_status(env, "--json")
    assert text.returncode == 0 and as_json.returncode == 0, text.stderr + as_json.stderr
    assert f"redis         redis://***@{host}/0\n" in text.stdout
    assert json.loads(as_json.stdout)["redis"] == f"redis://***@{host}/0"
    for out in (text.stdout, as_json.stdout, text.stderr, as_json.stderr):
        assert password not in out and name not in out

    embedded = {k: v for k, v in test_env.items() if k != "NEWSWATCH_REDIS_URL"}
    embedded["NEWSWATCH_DATA_DIR"] = str(tmp_path / "embedded")
    text = run_status(embedded)
    assert text.returncode == 0, text.stderr
    assert f"redis         unix://{tmp_path / 'embedded' / 'redis' / 'redis.sock'} (embedded)" in text.stdout


def test_fingerprint_count_is_the_dedupe_index_count(redis_client, keys, make_settings):
    """status counts the index from newswatch/ (no crawler import): the same figure the index reports."""
    from crawler.dedupe import DedupeIndex

    settings = make_settings()
    index = DedupeIndex(redis_client, keys, settings.dedupe_retention_days, settings.dedupe_min_chars)
    texts = ["美俄會談在日內瓦舉行，雙方討論了軍控問題。" * 20, "颱風登陸沿海地區，當地學校停課一天。" * 20,
             "央行宣布降息，股市應聲上漲，投資者情緒樂觀。" * 20]
    indexed = [not index.check_and_insert(f"id{n}", f"https://site/a/{n}.html", text).duplicate
               for n, text in enumerate(texts)]
    assert index.count() == sum(indexed) > 0
    assert collect(redis_client, settings)["fingerprints"] == index.count()
