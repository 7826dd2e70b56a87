"""The one Redis connection factory.

With `NEWSWATCH_REDIS_URL` set, `connect()` opens a client to that server. Without it, newswatch uses the
embedded server of the data folder (newswatch/embedded.py), starting it when none is there.

Ownership: `newswatch run` starts (or adopts) the server and stops it on exit; a one-shot command uses the
running one, or starts one for its own duration and stops it afterwards if no other client is connected.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

from newswatch.embedded import EmbeddedRedis, own_client_name
from newswatch.errors import RedisUnavailable
from newswatch.masking import mask
from newswatch.sentinel_url import SENTINEL_SCHEME, parse_sentinel_url

log = logging.getLogger(__name__)

# Client-side timeouts: long enough for a loaded server, short enough that a dead one is noticed.
SOCKET_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
HEALTH_CHECK_INTERVAL = 15
RETRIES = 10


def _client(url: str, **options) -> redis.Redis:
    if url.startswith(SENTINEL_SCHEME + "://"):
        # The sentinels say which server is the primary; the client asks again after a fail-over.
        sentinels, service, db, username, password = parse_sentinel_url(url)
        sentinel = Sentinel(sentinels, socket_timeout=options.get("socket_connect_timeout", CONNECT_TIMEOUT),
                            sentinel_kwargs={"password": password} if password else None)
        return sentinel.master_for(service, db=db, username=username, password=password, **options)
    return redis.Redis.from_url(url, **options)


def client_from_url(url: str, **kwargs) -> redis.Redis:
    """A client for an explicit URL (redis://, rediss://, unix://, redis+sentinel://) with newswatch's timeouts."""
    # A restarted server (or a failover) must not fail a crawl or a delivery: commands are retried with
    # exponential backoff for about a minute before the error surfaces.
    options = dict(socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT,
                   health_check_interval=HEALTH_CHECK_INTERVAL,
                   retry=Retry(ExponentialBackoff(cap=8.0, base=0.1), RETRIES),
                   retry_on_error=[redis.ConnectionError, redis.TimeoutError],
                   client_name=own_client_name())
    options.update(kwargs)
    return _client(url, **options)


def check(url: str, where: str) -> redis.Redis:
    """Ping once, without retries, so an unreachable server is one clear error at start (not a minute of
    retries and then a traceback); then hand out a client that does retry."""
    probe = _client(url, socket_timeout=CONNECT_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT)
    try:
        probe.ping()
    except redis.RedisError as exc:
        detail = str(exc)
        if isinstance(exc, MasterNotFoundError):  # its text goes on with a client repr per sentinel
            detail = detail.partition(" : ")[0]
        raise RedisUnavailable(f"Redis at {where} is not reachable ({exc.__class__.__name__}: {detail})") from None
    finally:
        probe.close()
    return client_from_url(url)


def redis_url(settings) -> str:
    """The URL of the server newswatch should use: the configured one, or the embedded one's."""
    if settings.redis_url:
        return settings.redis_url
    return EmbeddedRedis(settings.data_dir).url


def connect(settings, *, start_embedded: bool = True) -> redis.Redis:
    """A checked client for the configured server, or for the embedded one (started when needed).

    Raises RedisUnavailable with one clear line when the server cannot be reached or started.
    """
    if settings.redis_url:
        return check(settings.redis_url, mask(settings.redis_url, True, "redis_url"))
    server = EmbeddedRedis(settings.data_dir)
    url = server.ensure() if start_embedded else server.url
    return check(url, f"{url} (embedded)")


@contextmanager
def redis_session(settings, *, owner: bool = False, shutdown=None) -> Iterator[redis.Redis]:
    """A client for the length of one command.

    With the embedded server: a one-shot command (`owner=False`) stops the server afterwards only if it
    started it and nobody else is connected; `newswatch run` (`owner=True`) always stops it on exit. With a
    `shutdown` (newswatch/shutdown.py), a cold stop, which ends the process without leaving this block,
    stops a server this process started the same way.
    """
    if settings.redis_url:
        client = connect(settings)
        try:
            yield client
        finally:
            client.close()
        return
    server = EmbeddedRedis(settings.data_dir)
    server.ensure()
    client = check(server.url, f"{server.url} (embedded)")
    if shutdown is not None and server.started_here and not owner:
        shutdown.on_cold("stop the embedded Redis this process started", lambda: server.stop(only_if_alone=True))
    try:
        yield client
    finally:
        client.close()
        if owner:
            server.stop()
        elif server.started_here:
            server.stop(only_if_alone=True)


def server_version(client: redis.Redis) -> tuple[int, ...]:
    version = client.info("server").get("redis_version", "0")
    return tuple(int(p) for p in str(version).split(".")[:3] if p.isdigit())


def env_for_child(settings) -> dict:
    """Environment for a child process (a revisit) so it reaches the same server as its parent."""
    env = dict(os.environ)
    if not settings.redis_url:
        env["NEWSWATCH_DATA_DIR"] = str(settings.data_dir)
    return env
