"""The alert worker: every item of the stream delivered to every endpoint, at least once.

One consumer group per endpoint (`alerts:<name>`) and one `EndpointRunner` per endpoint, each with its own
dispatcher thread and `webhook_concurrency` delivery threads, so a slow, failing or rate-limited endpoint
never delays another. For each endpoint:

* at start the worker re-reads its own pending entries (those it had read but not acknowledged before a
  crash) and schedules them at the time their retry record says;
* it reads new entries only when a delivery thread is free, so nothing waits in memory unowned;
* entries of a dead consumer that sit untouched for `webhook_claim_idle` seconds are taken over with
  `XAUTOCLAIM`; a live worker touches its own pending entries well within that time, so they stay its own;
* `XACK` follows a successful delivery only; a failure is retried with backoff (`retry`), and after
  `webhook_max_attempts` attempts or `webhook_max_age` seconds the item goes to the dead letters;
* a 410 disables the endpoint (`keys.disabled`): its items stay pending until `newswatch alerts --enable`.

Use in-process (the daemon does): `AlertWorker(client, settings).run(stop_event)` blocks until
`stop_event` is set, then finishes the deliveries in flight and returns. `alerts_command` is the CLI.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

import redis

from alerts import formats
from alerts.deadletters import move_to_dead, replay
from alerts.delivery import Sender, deliver
from alerts.ratelimit import RateLimiter
from alerts.retry import RetryBook, RetryPolicy
from alerts.safety import check_address
from newswatch.connection import redis_session
from newswatch.errors import ConfigError, DeliveryError, EndpointGone, UnsafeEndpoint
from newswatch.groups import ensure_group

log = logging.getLogger(__name__)

DISABLED_POLL = 1.0  # seconds between checks whether a disabled endpoint was enabled again
MAX_BLOCK = 0.5  # longest XREADGROUP block, so due retries and stop requests are never late by more
MAX_SCHEDULED = 10_000  # entries waiting for a retry before reading new ones pauses (bounds memory)
REDIS_ERROR_PAUSE = 1.0
_LIVE_TOKENS: set[str] = set()  # consumer leases held by this process (tells ours from a predecessor's)


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _fields(raw) -> dict[str, str] | None:
    if not raw:
        return None  # an entry deleted from the stream while still pending
    return {_text(k): _text(v) for k, v in raw.items()}


class ConsumerLease:
    """The consumer name a worker uses in one group, held in Redis so two live workers never share one.

    The name is stable across restarts (`webhook_consumer`, default the host name) so a restarted worker
    finds its own pending entries. If a live worker holds it, this one takes `<name>-<pid>-<random>`. A
    lease left by a dead process on this host (its pid is gone) is taken over at once.
    """

    def __init__(self, client, key_for, base: str, ttl: float):
        self.client = client
        self.key_for = key_for
        self.base = base
        self.ttl_ms = int(ttl * 1000)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.name = base
        self.key = key_for(base)

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

    def acquire(self) -> str:
        for name in (self.base, f"{self.base}-{os.getpid()}-{uuid.uuid4().hex[:4]}"):
            key = self.key_for(name)
            taken = bool(self.client.set(key, self.token, nx=True, px=self.ttl_ms))
            if not taken:
                holder = self.client.get(key)
                if holder is not None and self._holder_dead(_text(holder)):
                    taken = bool(self.client.set(key, self.token, px=self.ttl_ms))
            if taken:
                self.name, self.key = name, key
                _LIVE_TOKENS.add(self.token)
                return name
        raise AssertionError("a random consumer name was taken")  # pragma: no cover

    def refresh(self) -> None:
        if _text(self.client.get(self.key) or b"") == self.token:
            self.client.pexpire(self.key, self.ttl_ms)
        else:
            self.client.set(self.key, self.token, nx=True, px=self.ttl_ms)

    def release(self) -> None:
        _LIVE_TOKENS.discard(self.token)
        if _text(self.client.get(self.key) or b"") == self.token:
            self.client.delete(self.key)


class EndpointRunner:
    """Delivers the items of one endpoint. Reads settings webhook_* (timeout, concurrency, backoff,
    max attempts and age, claim idle time, consumer) and the endpoint's own url, secrets, format,
    allow_private and rate_per_minute."""

    def __init__(self, client, settings, endpoint, consumer_base: str):
        self.client = client
        self.endpoint = endpoint
        self.name = endpoint.name
        self.fmt = formats.for_endpoint(endpoint)
        host = urlsplit(endpoint.url).hostname or ""
        try:  # a literal address can be refused now, at start; names are checked at each connection
            check_address(host, allow_private=endpoint.allow_private)
        except ValueError:
            pass
        self.policy = RetryPolicy.from_settings(settings)
        keys = settings.keys
        self.keys = keys
        self.stream, self.group = keys.items, keys.group(self.name)
        self.disabled_key = keys.disabled(self.name)
        self.book = RetryBook(client, keys.retry(self.name))
        rate = self.fmt.rate_per_minute
        self.limiter = RateLimiter(client, keys.rate(self.name), rate) if rate else None
        self.concurrency = settings.webhook_concurrency
        self.timeout = settings.webhook_timeout
        self.claim_idle = settings.webhook_claim_idle
        self.lookback = settings.webhook_max_age
        self.lease = ConsumerLease(client, lambda n: keys.consumer_lease(self.name, n), consumer_base,
                                   ttl=max(2 * self.claim_idle, 5.0))
        self.consumer = consumer_base
        self.stats = {"delivered": 0, "failed_attempts": 0, "dead": 0, "claimed": 0}
        self._stats_lock = threading.Lock()
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, str, dict | None]] = []
        self._seq = itertools.count()
        self._known: set[str] = set()  # entry ids scheduled or in flight in this process
        self._interrupted: dict[str, int] = {}  # entry id -> deliveries in a row cut short by Redis errors
        self._inflight = 0
        self._work: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._disabled_until_check = 0.0
        self._disabled = False

    # -- the dispatcher ------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        with self._cv:  # a restart after an error begins from what Redis holds, not from memory
            self._heap.clear()
            self._known.clear()
            self._inflight = 0
        self._work = queue.Queue()
        self.consumer = self.lease.acquire()
        ensure_group(self.client, self.stream, self.group, lookback=self.lookback)
        threads = [threading.Thread(target=self._deliveries, name=f"alerts-{self.name}-{n}", daemon=True)
                   for n in range(self.concurrency)]
        for thread in threads:
            thread.start()
        log.info("alert worker for endpoint %r (%s) runs as consumer %r of group %r",
                 self.name, self.fmt.name, self.consumer, self.group)
        try:
            self._recover_own()
            next_heartbeat = next_claim = 0.0
            while not stop.is_set():
                try:
                    now = time.monotonic()
                    if now >= next_heartbeat:
                        self._heartbeat()
                        next_heartbeat = now + self.claim_idle / 3
                    if self._is_disabled():
                        stop.wait(DISABLED_POLL)
                        continue
                    if now >= next_claim:
                        self._claim_stale()
                        next_claim = now + self.claim_idle / 2
                    self._dispatch_due()
                    free = self._free()
                    wait = min(MAX_BLOCK, max(0.0, next_heartbeat - time.monotonic()), self._until_due())
                    if free > 0 and len(self._heap) < MAX_SCHEDULED:
                        self._read_new(free, wait)
                    else:
                        with self._cv:
                            self._cv.wait(timeout=max(wait, 0.01))
                except redis.RedisError as exc:
                    if "NOGROUP" in str(exc):  # the stream or group was deleted under us
                        ensure_group(self.client, self.stream, self.group, lookback=self.lookback)
                        continue
                    log.warning("endpoint %r: Redis error (%s); retrying", self.name, exc)
                    stop.wait(REDIS_ERROR_PAUSE)
        finally:
            with self._cv:  # finish what is in flight; what was not started stays pending in Redis
                while self._inflight:
                    self._cv.wait(timeout=0.5)
            for _ in threads:
                self._work.put(None)
            for thread in threads:
                thread.join(timeout=self.timeout * 2 + 1)
            try:
                self.lease.release()
            except redis.RedisError:
                pass
            log.info("alert worker for endpoint %r stopped (%s)", self.name, self.stats)

    def _count(self, name: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[name] += n

    def _free(self) -> int:
        # up to one extra batch queued behind the running deliveries, so a thread that finishes finds
        # its next item without waiting for a Redis round trip; queued items are pending in Redis (ours)
        with self._cv:
            return 2 * self.concurrency - self._inflight

    def _until_due(self) -> float:
        with self._cv:
            return max(0.0, self._heap[0][0] - time.time()) if self._heap else MAX_BLOCK

    def _schedule(self, entry_id: str, fields: dict | None, due: float) -> None:
        with self._cv:
            self._known.add(entry_id)
            heapq.heappush(self._heap, (due, next(self._seq), entry_id, fields))
            self._cv.notify_all()

    def _dispatch(self, entry_id: str, fields: dict | None, fresh: bool) -> None:
        with self._cv:
            self._known.add(entry_id)
            self._inflight += 1
        self._work.put((entry_id, fields, fresh))

    def _dispatch_due(self) -> None:
        now = time.time()
        while True:
            with self._cv:
                if not self._heap or self._heap[0][0] > now or self._inflight >= 2 * self.concurrency:
                    return
                _, _, entry_id, fields = heapq.heappop(self._heap)
                self._inflight += 1
            self._work.put((entry_id, fields, False))

    def _read_new(self, count: int, wait: float) -> None:
        block = int(wait * 1000)
        # BLOCK 0 would wait forever: below a millisecond, do not block at all
        reply = self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count,
                                       block=block if block >= 1 else None)
        for _, entries in reply or ():
            for entry_id, raw in entries:
                self._dispatch(_text(entry_id), _fields(raw), fresh=True)

    def _recover_own(self) -> None:
        """Entries this consumer read before a crash or restart: scheduled as their retry records say."""
        last, total = "0", 0
        while True:
            reply = self.client.xreadgroup(self.group, self.consumer, {self.stream: last}, count=200)
            entries = reply[0][1] if reply else []
            if not entries:
                break
            ids = [_text(e[0]) for e in entries]
            states = self.book.get_many(ids)
            for entry_id, (_, raw) in zip(ids, entries, strict=True):
                state = states.get(entry_id)
                self._schedule(entry_id, _fields(raw), state.next_at if state else 0.0)
            total += len(ids)
            last = ids[-1]
        if total:
            log.info("endpoint %r: resuming %d pending deliveries of consumer %r", self.name, total, self.consumer)

    def _heartbeat(self) -> None:
        """Keep our own pending entries from looking abandoned, and adopt any we do not know of."""
        self.lease.refresh()
        start = "-"
        while True:
            rows = self.client.xpending_range(self.stream, self.group, min=start, max="+", count=500,
                                              consumername=self.consumer)
            if not rows:
                return
            ids = [_text(r["message_id"]) for r in rows]
            self.client.xclaim(self.stream, self.group, self.consumer, min_idle_time=0,
                               message_ids=ids, justid=True)
            with self._cv:
                orphans = [i for i in ids if i not in self._known]
            for entry_id in orphans:  # e.g. taken by XAUTOCLAIM on Redis 6.2, which hides deleted ones
                found = self.client.xrange(self.stream, min=entry_id, max=entry_id)
                self._schedule(entry_id, _fields(found[0][1]) if found else None, 0.0)
            if len(rows) < 500:
                return
            start = "(" + ids[-1]

    def _claim_stale(self) -> None:
        cursor, claimed = "0-0", 0
        for _ in range(10):  # bounded work per round; the cursor resumes next round
            reply = self.client.xautoclaim(self.stream, self.group, self.consumer,
                                           min_idle_time=int(self.claim_idle * 1000), start_id=cursor, count=100)
            cursor, entries = _text(reply[0]), [e for e in reply[1] if e[0] is not None]
            with self._cv:
                fresh = [(_text(i), raw) for i, raw in entries if _text(i) not in self._known]
            states = self.book.get_many([i for i, _ in fresh])
            for entry_id, raw in fresh:
                state = states.get(entry_id)
                self._schedule(entry_id, _fields(raw), state.next_at if state else 0.0)
            claimed += len(fresh)
            if cursor == "0-0":
                break
        if claimed:
            self._count("claimed", claimed)
            log.info("endpoint %r: took over %d stale deliveries of other consumers", self.name, claimed)

    def _is_disabled(self) -> bool:
        now = time.monotonic()
        if now >= self._disabled_until_check:
            was = self._disabled
            self._disabled = bool(self.client.exists(self.disabled_key))
            self._disabled_until_check = now + (DISABLED_POLL if self._disabled else MAX_BLOCK * 4)
            if was and not self._disabled:
                log.info("endpoint %r was enabled again; delivering its waiting items", self.name)
        return self._disabled

    # -- the delivery threads ------------------------------------------------------------------------
    def _deliveries(self) -> None:
        sender = Sender(timeout=self.timeout, allow_private=self.endpoint.allow_private)
        try:
            while True:
                job = self._work.get()
                if job is None:
                    return
                entry_id, fields, fresh = job
                try:
                    if self._stop.is_set():  # not started yet: left pending, resumed on the next start
                        self._forget(entry_id)
                        continue
                    self._attempt(sender, entry_id, fields, fresh)
                except Exception as exc:  # noqa: BLE001 - the bookkeeping failed (Redis down): keep the item
                    # No attempt can be recorded in Redis now; the wait still grows with each interruption.
                    with self._cv:
                        streak = self._interrupted[entry_id] = self._interrupted.get(entry_id, 0) + 1
                    delay = self.policy.delay(streak)
                    log.warning("endpoint %r: delivery of entry %s interrupted (%s: %s); will try again in %.1fs",
                                self.name, entry_id, exc.__class__.__name__, exc, delay)
                    self._schedule(entry_id, fields, time.time() + delay)
                finally:
                    with self._cv:
                        self._inflight -= 1
                        self._cv.notify_all()
        finally:
            sender.close()

    def _forget(self, entry_id: str) -> None:
        with self._cv:
            self._known.discard(entry_id)
            self._interrupted.pop(entry_id, None)

    def _owned(self, entry_id: str) -> bool:
        rows = self.client.xpending_range(self.stream, self.group, min=entry_id, max=entry_id, count=1,
                                          consumername=self.consumer)
        return bool(rows)

    def _attempt(self, sender: Sender, entry_id: str, fields: dict | None, fresh: bool) -> None:
        if self._disabled:  # read just before a 410 disabled the endpoint: it waits with the others
            self._schedule(entry_id, fields, 0.0)
            return
        if not fresh and not self._owned(entry_id):
            self._forget(entry_id)  # another worker took it over while we waited: it is theirs now
            return
        if fields is None:
            log.warning("endpoint %r: entry %s was deleted from the stream before delivery", self.name, entry_id)
            self._ack(entry_id)
            return
        data = fields.get("data", "")
        try:
            item = json.loads(data)
            if not isinstance(item, dict):
                raise ValueError("not an object")
        except ValueError:
            move_to_dead(self.client, self.keys, endpoint=self.name, entry_id=entry_id,
                         msg_id=fields.get("id", entry_id), data=data, error="item is not a JSON object", attempts=0)
            self._count("dead", 1)
            self._forget(entry_id)
            return
        msg_id = str(item.get("id") or fields.get("id") or entry_id)
        if self.limiter is not None:
            wait = self.limiter.reserve()
            if wait > 0 and self._stop.wait(wait):
                self._forget(entry_id)  # stopping: it stays pending and is resumed on the next start
                return
        state = None if fresh else self.book.get(entry_id)
        try:
            request = self.fmt.request(item, msg_id, formats.event_time(entry_id))
            deliver(sender, self.fmt, request)
        except EndpointGone as exc:
            self._disable(exc)
            self._schedule(entry_id, fields, 0.0)
            return
        except Exception as exc:  # noqa: BLE001 - whatever raised, one failed attempt: counted, backed off
            self._failed(entry_id, fields, msg_id, data, state, exc)
            return
        self._ack(entry_id)
        self._count("delivered", 1)

    def _ack(self, entry_id: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.stream, self.group, entry_id)
        self.book.clear(pipe, entry_id)
        pipe.execute()
        self._forget(entry_id)

    def _failed(self, entry_id, fields, msg_id, data, state, exc) -> None:
        now = time.time()
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(exc, (DeliveryError, UnsafeEndpoint)):
            error = str(exc)
        else:  # an answer (or item) the code did not foresee: a bug to fix, but still only one attempt
            error = f"{exc.__class__.__name__}: {exc}"
            log.warning("endpoint %r: unexpected error delivering item %s", self.name, msg_id, exc_info=exc)
        state = self.policy.failed(state, error, now, retry_after)
        self._count("failed_attempts", 1)
        if getattr(exc, "permanent", False) or self.policy.exhausted(state, now):
            move_to_dead(self.client, self.keys, endpoint=self.name, entry_id=entry_id, msg_id=msg_id,
                         data=data, error=error, attempts=state.attempts)
            self._count("dead", 1)
            self._forget(entry_id)
            return
        self.book.put(entry_id, state)
        log.warning("delivery of item %s to endpoint %r failed (attempt %d of %d): %s; next attempt in %.1fs",
                    msg_id, self.name, state.attempts, self.policy.max_attempts, error, state.next_at - now)
        self._schedule(entry_id, fields, state.next_at)

    def _disable(self, exc: Exception) -> None:
        record = json.dumps({"since": time.time(), "reason": str(exc)})
        if self.client.set(self.disabled_key, record, nx=True):
            log.error("endpoint %r answered %s: disabled; its items are kept, undelivered, until "
                      "`newswatch alerts --enable %s`", self.name, exc, self.name)
        with self._cv:
            self._disabled = True
            self._disabled_until_check = time.monotonic() + DISABLED_POLL


class AlertWorker:
    """Every configured endpoint's runner, in threads of this process. Reads settings `endpoints`
    (NEWSWATCH_WEBHOOK_URL and `[[webhooks]]`), `webhook_consumer` and the runners' settings."""

    def __init__(self, client, settings, *, endpoints=None):
        endpoints = settings.endpoints if endpoints is None else tuple(endpoints)
        if not endpoints:
            raise ConfigError("NEWSWATCH_WEBHOOK_URL", "no webhook endpoint configured "
                              "(set it, or add [[webhooks]] tables to the NEWSWATCH_CONFIG file)")
        base = settings.webhook_consumer or socket.gethostname()
        self.runners = [EndpointRunner(client, settings, endpoint, base) for endpoint in endpoints]

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set; then finish the deliveries in flight and return."""
        threads = [threading.Thread(target=self._supervise, args=(runner, stop), daemon=True,
                                    name=f"alerts-{runner.name}") for runner in self.runners]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)

    @staticmethod
    def _supervise(runner: EndpointRunner, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                runner.run(stop)
            except Exception:  # noqa: BLE001 - one endpoint's failure must not end the others
                log.exception("alert worker for endpoint %r failed; restarting it", runner.name)
                stop.wait(REDIS_ERROR_PAUSE * 5)

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return {runner.name: dict(runner.stats) for runner in self.runners}


def alerts_command(settings, *, replay_dead: bool = False, enable: str | None = None) -> int:
    """`newswatch alerts`: run the worker until SIGTERM/SIGINT (exit 0); a second signal forces exit."""
    keys = settings.keys
    with redis_session(settings) as client:
        if enable:
            known = {e.name for e in settings.endpoints}
            if enable not in known and not client.exists(keys.disabled(enable)):
                print(f"newswatch: no endpoint named {enable!r} (configured: {', '.join(sorted(known)) or 'none'})",
                      file=sys.stderr)
                return 2
            was = client.delete(keys.disabled(enable))
            print(f"endpoint {enable!r} " + ("enabled" if was else "was not disabled"))
            return 0
        if replay_dead:
            delivered, kept = replay(client, settings)
            print(f"dead letters: {delivered} delivered, {kept} still dead")
            return 0 if kept == 0 else 1
        try:
            worker = AlertWorker(client, settings)
        except UnsafeEndpoint as exc:
            print(f"newswatch: {exc}", file=sys.stderr)
            return 2
        stop = threading.Event()

        def on_signal(signum, frame):
            if stop.is_set():
                print("newswatch: second signal, exiting without waiting for deliveries", file=sys.stderr)
                os._exit(1)  # what was in flight stays pending and is delivered after the next start
            print("newswatch: finishing deliveries in flight (signal again to force exit)", file=sys.stderr)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        worker.run(stop)
    return 0
