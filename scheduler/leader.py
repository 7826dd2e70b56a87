"""The scheduler's leader lock: one key in Redis, held by one `newswatch run` at a time.

The holder sets the key with `SET NX PX ttl` to a value unique to it (`host:pid:uuid`) and renews it every
ttl/3. Renewal and release compare the value first (in Lua, so the check and the write are one atomic
step): a leader that stalled past its TTL and lost the key can never extend or delete its successor's
lock. A standby polls `acquire()`; when the leader dies without releasing (SIGKILL, power loss) the key
expires and the standby takes over within one TTL plus one poll.

Reads the setting `leader_ttl` (seconds), handed in as `ttl`.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

import redis

log = logging.getLogger(__name__)

# KEYS[1] = lock key, ARGV[1] = holder id, ARGV[2] = ttl in ms. 1 if still ours and extended, else 0.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] = lock key, ARGV[1] = holder id. 1 if it was ours and is now gone, else 0.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


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
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @property
    def renew_every(self) -> float:
        """Seconds between renewals: three chances to renew before the lock would expire."""
        return self.ttl_ms / 3000

    def acquire(self) -> bool:
        """Take the lock if it is free (or already ours, e.g. after a reconnect)."""
        if self.client.set(self.key, self.holder, nx=True, px=self.ttl_ms):
            return True
        return self.renew()

    def renew(self) -> bool:
        try:
            return bool(self._renew(keys=[self.key], args=[self.holder, self.ttl_ms]))
        except redis.RedisError as exc:
            log.warning("could not renew the leader lock %s: %s", self.key, exc)
            return False

    def release(self) -> bool:
        return bool(self._release(keys=[self.key], args=[self.holder]))

    def current_holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value
