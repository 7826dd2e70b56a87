"""The scheduler's leader lock: one key in Redis, held by one `newswatch run` at a time.

redis-py's `Lock` does the work: `SET NX PX ttl` with a token unique to the holder (`host:pid:uuid`,
readable in `newswatch status`), and renewal (`reacquire`) and release that compare the token first in one
Lua step, so a leader that stalled past its TTL and lost the key can never extend or delete its
successor's lock. The holder renews every ttl/3. A standby polls `acquire()`; when the leader dies without
releasing (SIGKILL, power loss) the key expires and the standby takes over within one TTL plus one poll.

Reads the setting `leader_ttl` (seconds), handed in as `ttl`.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

import redis
from redis.exceptions import LockError
from redis.lock import Lock

log = logging.getLogger(__name__)


def holder_id() -> str:
    """`host:pid:uuid`: readable in `newswatch status`, and unique even across a pid reused on restart."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class LeaderLock:
    """A TTL lock in Redis. `acquire`, `renew` and `release` return whether this holder has the lock.

    Redis errors propagate from `acquire` and `release`; `renew` turns them into False because a leader
    that cannot confirm its lock must stop scheduling at once (another may take over when the TTL ends).
    """

    def __init__(self, client: redis.Redis, key: str, ttl: float, holder: str | None = None):
        if ttl <= 0:
            raise ValueError(f"leader TTL must be positive, got {ttl}")
        self.client = client
        self.key = key
        self.ttl_ms = int(ttl * 1000)
        self.holder = holder or holder_id()
        # not thread-local: a forced stop releases the lock from another thread than the one renewing it
        self._lock = Lock(client, key, timeout=ttl, blocking=False, thread_local=False)
        self._adopt()

    def _adopt(self) -> None:
        # The token is always this holder's id: after a reconnect (a new client, so a new Lock) a key still
        # holding our id is ours to renew or release. Lock has no call to adopt a token, so it is put where
        # Lock.acquire puts it.
        self._lock.local.token = self.client.get_encoder().encode(self.holder)

    @property
    def renew_every(self) -> float:
        """Seconds between renewals: three chances to renew before the lock would expire."""
        return self.ttl_ms / 3000

    def acquire(self) -> bool:
        """Take the lock if it is free (or already ours, e.g. after a reconnect)."""
        if self._lock.acquire(blocking=False, token=self.holder):
            return True
        return self.renew()

    def renew(self) -> bool:
        try:
            return bool(self._lock.reacquire())
        except LockError:  # the key is gone or another holder's
            return False
        except redis.RedisError as exc:
            log.warning("could not renew the leader lock %s: %s", self.key, exc)
            return False

    def release(self) -> bool:
        try:
            self._lock.release()
            return True
        except LockError:  # no longer ours: never delete a successor's lock
            return False
        finally:
            self._adopt()  # release clears the token; a later acquire may take the lock again

    def current_holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value
