"""The delivery of one endpoint's items: a pool of delivery threads and a housekeeping thread.

One consumer group per endpoint (`alerts:<name>`) and one `EndpointRunner` per endpoint, each with its own
`webhook_concurrency` delivery threads and housekeeping thread, so a slow, failing or rate-limited endpoint
never delays another. For each endpoint:

* at start the runner re-reads its own pending entries (those it had read but not acknowledged before a
  crash) and schedules them at the time their retry record says;
* each delivery thread takes a due retry (`schedule`: what this process holds), else reads up to
  `READ_BATCH` new entries itself (`XREADGROUP`, blocking while there are none) and delivers them: no
  hand-over between threads (docs/performance.md);
* entries of a dead consumer that sit untouched for `webhook_claim_idle` seconds are taken over with
  `XAUTOCLAIM`; a live worker touches its own pending entries well within that time, so they stay its own;
* `XACK` follows a successful delivery only; a failed attempt (whatever raised: `attempt`) is counted and
  retried with backoff (`retry`), and after `webhook_max_attempts` attempts or `webhook_max_age` seconds
  the item goes to the dead letters;
* a 410 disables the endpoint (`keys.disabled`): its items stay pending until `newswatch alerts --enable`.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from alerts.acks import PendingAcks
from alerts.attempt import EndpointDelivery, Result, mark_gone, read_entry
from alerts.deadletters import move_to_dead
from alerts.delivery import Sender
from alerts.lease import ConsumerLease
from alerts.membership import Membership, text
from alerts.packed_read import PackedRead
from alerts.retry import RetryBook, RetryPolicy
from alerts.schedule import Job, Schedule
from newswatch.addresses import check_endpoint
from newswatch.groups import ensure_group

log = logging.getLogger(__name__)

DISABLED_POLL = 1.0  # seconds between checks whether a disabled endpoint was enabled again
MAX_BLOCK = 0.5  # longest XREADGROUP block, so due retries and stop requests are never late by more
MAX_SCHEDULED = 10_000  # entries waiting for a retry before reading new ones pauses (bounds memory)
READ_BATCH = 8  # new entries a delivery thread reads at once
ACK_WAIT = 0.2  # longest a thread holds an acknowledgement for its next read before sending it alone
REDIS_ERROR_PAUSE = 1.0


class EndpointRunner:
    """Delivers the items of one endpoint. Reads settings webhook_* (timeout, concurrency, backoff,
    max attempts and age, claim idle time, consumer) and the endpoint's own url, secrets, format,
    allow_private and rate_per_minute."""

    def __init__(self, client, settings, endpoint, consumer_base: str):
        self.client = client
        self.endpoint = endpoint
        self.name = endpoint.name
        check_endpoint(endpoint)  # a literal address is refused now, at start; names at each connection
        self.delivery = EndpointDelivery(client, settings, endpoint)
        self.fmt = self.delivery.fmt
        self.policy = RetryPolicy.from_settings(settings)
        keys = settings.keys
        self.keys = keys
        self.stream, self.group = keys.items, keys.group(self.name)
        self.disabled_key = keys.disabled(self.name)
        self.book = RetryBook(client, keys.retry(self.name))
        self.concurrency = settings.webhook_concurrency
        self.timeout = settings.webhook_timeout
        self.claim_idle = settings.webhook_claim_idle
        self.lookback = settings.webhook_max_age
        self.lease = ConsumerLease(client, lambda n: keys.consumer_lease(self.name, n), consumer_base,
                                   ttl=max(2 * self.claim_idle, 5.0))
        self.consumer = consumer_base
        self.member = Membership(client, self.stream, self.group, consumer_base)
        self.stats = {"delivered": 0, "failed_attempts": 0, "dead": 0, "claimed": 0}
        self._stats_lock = threading.Lock()
        self.schedule = Schedule()
        self._suspects: set[str] = set()  # own pending ids unknown at the last heartbeat
        self._stop = threading.Event()
        self._read_warned = 0.0
        self._disabled_until_check = 0.0
        self._disabled = False
        self._disabled_lock = threading.Lock()  # a delivery thread's 410 against the housekeeping's check

    # -- housekeeping ----------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        halt = threading.Event()  # set when this run ends (stopped, or failed): the delivery threads return
        self.schedule.clear()  # a restart after an error begins from what Redis holds, not from memory
        self._suspects.clear()
        self.consumer = self.member.consumer = self.lease.acquire()
        threads = [threading.Thread(target=self._deliveries, args=(halt,), name=f"alerts-{self.name}-{n}",
                                    daemon=True) for n in range(self.concurrency)]
        try:
            ensure_group(self.client, self.stream, self.group, lookback=self.lookback)
            log.info("alert worker for endpoint %r (%s) runs as consumer %r of group %r",
                     self.name, self.fmt.name, self.consumer, self.group)
            self._recover_own()  # before any thread reads: what waited since the last run goes first
            for thread in threads:
                thread.start()
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
                    wake = min(next_heartbeat, next_claim, self._disabled_until_check)  # another worker's 410
                    stop.wait(max(0.01, wake - time.monotonic()))
                except redis.RedisError as exc:
                    if "NOGROUP" in str(exc):  # the stream or group was deleted under us
                        ensure_group(self.client, self.stream, self.group, lookback=self.lookback)
                        continue
                    log.warning("endpoint %r: Redis error (%s); retrying", self.name, exc)
                    stop.wait(REDIS_ERROR_PAUSE)
        finally:
            halt.set()  # deliveries in flight finish; what was not started stays pending in Redis
            self.schedule.wake_all()
            for thread in threads:  # each sends its last acknowledgements as it ends
                if thread.is_alive():
                    thread.join(timeout=self.timeout * 2 + MAX_BLOCK + REDIS_ERROR_PAUSE * 5)
            try:
                self.lease.release()
            except redis.RedisError:
                pass
            log.info("alert worker for endpoint %r stopped (%s)", self.name, self.stats)

    def _count(self, name: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[name] += n

    def _schedule_recorded(self, entries) -> None:
        """Schedule entries at the time their retry records say (now, when they have none)."""
        states = self.book.get_many([entry_id for entry_id, _ in entries])
        for entry_id, fields in entries:
            state = states.get(entry_id)
            self.schedule.add(entry_id, fields, state.next_at if state else 0.0)

    def _recover_own(self) -> None:
        """Entries this consumer read before a crash or restart: scheduled as their retry records say."""
        total = 0
        for page in self.member.own_pending():
            self._schedule_recorded(page)
            total += len(page)
        if total:
            log.info("endpoint %r: resuming %d pending deliveries of consumer %r", self.name, total, self.consumer)

    def _heartbeat(self) -> None:
        """Keep our own pending entries from looking abandoned, and adopt any we do not know of."""
        self.lease.refresh()
        unknown: set[str] = set()
        for ids in self.member.touch_own():
            for entry_id in self.schedule.unknown(ids):  # e.g. taken by XAUTOCLAIM on Redis 6.2, which hides deleted ones
                # adopted when unknown twice in a row: an entry a thread has just read is known by then
                if entry_id in self._suspects:
                    self.schedule.add(entry_id, self.member.entry(entry_id), 0.0)
                else:
                    unknown.add(entry_id)
        self._suspects = unknown

    def _claim_stale(self) -> None:
        claimed = 0
        for page in self.member.claim_stale(self.claim_idle):
            unknown = set(self.schedule.unknown(entry_id for entry_id, _ in page))
            fresh = [(entry_id, fields) for entry_id, fields in page if entry_id in unknown]
            self._schedule_recorded(fresh)
            claimed += len(fresh)
        if claimed:
            self._count("claimed", claimed)
            log.info("endpoint %r: took over %d stale deliveries of other consumers", self.name, claimed)

    def _is_disabled(self) -> bool:
        now = time.monotonic()
        if now >= self._disabled_until_check:
            disabled = bool(self.client.exists(self.disabled_key))
            with self._disabled_lock:
                if self._disabled_until_check > now:
                    # a delivery thread's 410 disabled the endpoint while Redis answered: an answer read
                    # before its mark must not undo it (the item that met the 410 would be posted again)
                    return self._disabled
                was, self._disabled = self._disabled, disabled
                self._disabled_until_check = now + (DISABLED_POLL if disabled else MAX_BLOCK * 4)
            if was and not disabled:
                log.info("endpoint %r was enabled again; delivering its waiting items", self.name)
                self.schedule.wake_all()
        return self._disabled

    # -- the delivery threads ------------------------------------------------------------------------
    def _deliveries(self, halt: threading.Event) -> None:
        sender = self.delivery.sender()
        acks = PendingAcks(self.client, self.stream, self.group, self.book.key, self._acked)
        packed = PackedRead(self.client, self.stream, self.group, self.book.key)
        try:
            while not (halt.is_set() or self._stop.is_set()):
                try:
                    jobs = self._next_jobs(acks, packed)
                except Exception as exc:  # noqa: BLE001 - a failed read must not end the thread
                    self._read_failed(exc, halt)
                    continue
                for n, (entry_id, fields, fresh) in enumerate(jobs):
                    if halt.is_set() or self._stop.is_set():  # not started: left pending, resumed next start
                        for left, _, _ in jobs[n:]:
                            self._forget(left)
                        break
                    self._deliver(sender, acks, entry_id, fields, fresh)
                    acks.send_if_held(ACK_WAIT)
        finally:
            acks.flush()
            packed.close()
            sender.close()

    def _next_jobs(self, acks: PendingAcks, packed: PackedRead) -> list[Job]:
        """A due retry, else up to READ_BATCH new entries (waiting for them until the next retry is due)."""
        due, wait, paused = self.schedule.take_due(time.time(), self._disabled, MAX_SCHEDULED, MAX_BLOCK)
        if due is not None:
            return [due]
        if paused:
            if acks.ids:
                acks.exchange()
            self.schedule.wait(max(wait, 0.01))
            return []
        entries = []
        if acks.ids:  # the acknowledgements go with a read; in a transaction it does not block
            entries = acks.read_new(packed, self.member, READ_BATCH)
        if not entries:
            entries = self.member.read_new(READ_BATCH, int(wait * 1000))
        self.schedule.know(entry_id for entry_id, _ in entries)
        return [(entry_id, fields, True) for entry_id, fields in entries]

    def _read_failed(self, exc: Exception, halt: threading.Event) -> None:
        if isinstance(exc, redis.RedisError) and "NOGROUP" in str(exc):  # stream or group deleted under us
            try:
                ensure_group(self.client, self.stream, self.group, lookback=self.lookback)
                return
            except redis.RedisError as again:
                exc = again
        now = time.monotonic()
        if now - self._read_warned >= REDIS_ERROR_PAUSE:  # one line for all the threads, not one each
            self._read_warned = now
            log.warning("endpoint %r: reading new items failed (%s: %s); retrying", self.name,
                        exc.__class__.__name__, exc, exc_info=not isinstance(exc, redis.RedisError))
        halt.wait(REDIS_ERROR_PAUSE)

    def _deliver(self, sender: Sender, acks: PendingAcks, entry_id: str, fields: dict | None, fresh: bool) -> None:
        try:
            self._attempt(sender, acks, entry_id, fields, fresh)
        except Exception as exc:  # noqa: BLE001 - the bookkeeping failed (Redis down): keep the item
            # No attempt can be recorded in Redis now; the wait still grows with each interruption.
            streak = self.schedule.interrupted(entry_id)
            delay = self.policy.delay(streak)
            log.warning("endpoint %r: delivery of entry %s interrupted (%s: %s); will try again in %.1fs",
                        self.name, entry_id, exc.__class__.__name__, exc, delay)
            self.schedule.add(entry_id, fields, time.time() + delay)

    def _forget(self, entry_id: str) -> None:
        self.schedule.forget((entry_id,))

    def _attempt(self, sender: Sender, acks: PendingAcks, entry_id: str, fields: dict | None, fresh: bool) -> None:
        if self._disabled:  # read just before a 410 disabled the endpoint: it waits with the others
            self.schedule.add(entry_id, fields, 0.0)
            return
        state = None
        if not fresh:  # a retry: still ours, and its record, in one round trip (with the acknowledgements)
            owned, record = acks.exchange(lambda pipe: self.member.queue_owns(pipe, entry_id),
                                          lambda pipe: self.book.queue_get(pipe, entry_id))
            state = self.book.state(record)
            if not owned:
                self._forget(entry_id)  # another worker took it over while we waited: it is theirs now
                return
        if fields is None:
            log.warning("endpoint %r: entry %s was deleted from the stream before delivery", self.name, entry_id)
            acks.add(entry_id)  # ours (known) until its XACK is sent: see acks.py
            return
        data = fields.get("data", "")  # bytes as the delivery threads read it (packed_read.py), else text
        try:
            item, data = read_entry(data)
        except ValueError:
            move_to_dead(self.client, self.keys, endpoint=self.name, entry_id=entry_id,
                         msg_id=fields.get("id", entry_id), data=text(data), error="item is not a JSON object",
                         attempts=0)
            self._count("dead", 1)
            self._forget(entry_id)
            return
        msg_id = str(item.get("id") or fields.get("id") or entry_id)
        result = self.delivery.attempt(sender, item, msg_id, entry_id, self._stop, item_json=data)
        if result.interrupted:
            self._forget(entry_id)  # stopping: it stays pending and is resumed on the next start
        elif result.gone is not None:
            self._disable(result.gone)
            self.schedule.add(entry_id, fields, 0.0)
        elif not result.delivered:
            self._failed(entry_id, fields, msg_id, data, state, result)
        else:
            acks.add(entry_id)
            with self._stats_lock:  # (not `_count`: one call less on every delivery)
                self.stats["delivered"] += 1

    def _acked(self, entry_ids: list[str]) -> None:
        self.schedule.forget(entry_ids)

    def _failed(self, entry_id, fields, msg_id, data, state, result: Result) -> None:
        now = time.time()
        state = self.policy.failed(state, result.error, now, result.retry_after)
        self._count("failed_attempts", 1)
        if result.permanent or self.policy.exhausted(state, now):
            move_to_dead(self.client, self.keys, endpoint=self.name, entry_id=entry_id, msg_id=msg_id,
                         data=data, error=result.error, attempts=state.attempts)
            self._count("dead", 1)
            self._forget(entry_id)
            return
        self.book.put(entry_id, state)
        log.warning("delivery of item %s to endpoint %r failed (attempt %d of %d): %s; next attempt in %.1fs",
                    msg_id, self.name, state.attempts, self.policy.max_attempts, result.error, state.next_at - now)
        self.schedule.add(entry_id, fields, state.next_at)

    def _disable(self, exc: Exception) -> None:
        mark_gone(self.client, self.keys, self.name, exc)
        with self._disabled_lock:
            self._disabled = True
            self._disabled_until_check = time.monotonic() + DISABLED_POLL
