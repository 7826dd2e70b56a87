"""The consumer name a worker uses in one group, held in Redis so two live workers never share one.

The name is stable across restarts (`webhook_consumer`, default the host name) so a restarted worker finds
its own pending entries. If a live worker holds it, this one takes `<name>-<pid>-<random>`. A lease left by
a dead process on this host (its pid is gone) is taken over at once rather than after its TTL.

The lease is a redis-py `Lock`: its token (`host:pid:random`) names the holder, `reacquire` keeps it, and
`release` deletes it only while this holder still has it. The token is set by us rather than drawn by the
Lock because taking over a dead holder's lease needs to read who holds it.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

from redis.exceptions import LockError
from redis.lock import Lock

log = logging.getLogger(__name__)

_LIVE_TOKENS: set[str] = set()  # consumer leases held by this process (tells ours from a predecessor's)


class ConsumerLease:
    def __init__(self, client, key_for, base: str, ttl: float):
        self.client = client
        self.key_for = key_for
        self.base = base
        self.ttl = ttl
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.name = base
        self._lock: Lock | None = None

    def _holder_dead(self, holder: str) -> bool:
        host, _, rest = holder.partition(":")
        pid_text = rest.partition(":")[0]
        if host != socket.gethostname() or not pid_text.isdigit():
            return False
        pid = int(pid_text)
        if pid == os.getpid():
            # ours: alive if this process holds it now, else an earlier incarnation (a container restart)
            return holder not in _LIVE_TOKENS
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _new_lock(self, name: str) -> Lock:
        # thread_local=False: the housekeeping thread refreshes it, a cold stop may release it from another
        return Lock(self.client, self.key_for(name), timeout=self.ttl, blocking=False, thread_local=False)

    def acquire(self) -> str:
        for name in (self.base, f"{self.base}-{os.getpid()}-{uuid.uuid4().hex[:4]}"):
            lock = self._new_lock(name)
            taken = lock.acquire(token=self.token)
            if not taken:
                holder = self.client.get(lock.name)
                if holder is not None and self._holder_dead(holder.decode("utf-8", "replace")):
                    try:
                        lock.do_release(holder)  # deletes it only if that dead holder still has it
                    except LockError:
                        pass  # someone else took it meanwhile
                    taken = lock.acquire(token=self.token)
            if taken:
                self.name, self._lock = name, lock
                _LIVE_TOKENS.add(self.token)
                return name
        raise AssertionError("a random consumer name was taken")  # pragma: no cover

    def refresh(self) -> None:
        """Keep the lease; take it again if it expired (a long pause), as long as nobody else has."""
        if self._lock is None:
            return
        try:
            self._lock.reacquire()
        except LockError:
            if not self._lock.acquire(token=self.token):
                log.warning("the consumer name %r is held by another worker since this one's lease expired",
                            self.name)

    def release(self) -> None:
        _LIVE_TOKENS.discard(self.token)
        lock, self._lock = self._lock, None
        if lock is not None:
            try:
                lock.release()
            except LockError:
                pass  # expired, or taken over: nothing of ours left to release
