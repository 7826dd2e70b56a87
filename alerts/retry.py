"""When to try a failed delivery again, and the record of attempts that survives a restart.

Backoff doubles from `webhook_backoff_base` up to `webhook_backoff_cap`, with "equal jitter" (half the
delay fixed, half random) so retries neither come early nor all at once after an outage. A receiver's
`Retry-After` is honoured, capped by `webhook_backoff_cap` so one answer cannot park an item for days.

State lives in the Redis hash `keys.retry(endpoint)`: stream entry id -> JSON {attempts, first_at,
next_at, error}. A restarted or different worker that picks the entry up continues the same schedule and
the same attempt count, so `webhook_max_attempts` and `webhook_max_age` mean what they say.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass

from newswatch.errors import ConfigError


@dataclass
class RetryState:
    attempts: int = 0
    first_at: float = 0.0  # time of the first failed attempt
    next_at: float = 0.0
    error: str = ""


class RetryPolicy:
    """Reads settings webhook_backoff_base, webhook_backoff_cap, webhook_max_attempts, webhook_max_age."""

    def __init__(self, *, base: float, cap: float, max_attempts: int, max_age: float,
                 rng: random.Random | None = None):
        if base <= 0:
            raise ConfigError("NEWSWATCH_WEBHOOK_BACKOFF_BASE", f"expected a positive number, got {base!r}")
        if cap < base:
            raise ConfigError("NEWSWATCH_WEBHOOK_BACKOFF_CAP", f"expected at least the backoff base {base!r}, got {cap!r}")
        if max_attempts < 1:
            raise ConfigError("NEWSWATCH_WEBHOOK_MAX_ATTEMPTS", f"expected at least 1, got {max_attempts!r}")
        if max_age <= 0:
            raise ConfigError("NEWSWATCH_WEBHOOK_MAX_AGE", f"expected a positive number, got {max_age!r}")
        self.base, self.cap, self.max_attempts, self.max_age = base, cap, max_attempts, max_age
        self._rng = rng or random.Random()

    @classmethod
    def from_settings(cls, settings) -> RetryPolicy:
        return cls(base=settings.webhook_backoff_base, cap=settings.webhook_backoff_cap,
                   max_attempts=settings.webhook_max_attempts, max_age=settings.webhook_max_age)

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `attempts`-th failed attempt."""
        full = min(self.cap, self.base * 2 ** max(0, attempts - 1))
        wait = full / 2 + self._rng.uniform(0, full / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.cap))
        return wait

    def exhausted(self, state: RetryState, now: float) -> bool:
        return state.attempts >= self.max_attempts or now - state.first_at >= self.max_age

    def failed(self, state: RetryState | None, error: str, now: float,
               retry_after: float | None = None) -> RetryState:
        """The state after one more failed attempt, with its next attempt time."""
        state = RetryState(**asdict(state)) if state else RetryState(first_at=now)
        state.attempts += 1
        state.error = error
        state.next_at = now + self.delay(state.attempts, retry_after)
        return state


class RetryBook:
    """The Redis hash of retry states of one endpoint."""

    def __init__(self, client, key: str):
        self.client = client
        self.key = key

    @staticmethod
    def state(raw) -> RetryState | None:
        """The state in a record as stored (None when there is none)."""
        if raw:
            try:
                return RetryState(**json.loads(raw))
            except (ValueError, TypeError):
                pass  # an unreadable record only loses the count, never the item
        return None

    def get_many(self, entry_ids: list[str]) -> dict[str, RetryState]:
        if not entry_ids:
            return {}
        states = zip(entry_ids, map(self.state, self.client.hmget(self.key, entry_ids)), strict=True)
        return {entry_id: state for entry_id, state in states if state is not None}

    def queue_get(self, pipe, entry_id: str):
        """Ask for one record on `pipe` (a pipeline, so it shares a round trip); `state` reads the answer."""
        return pipe.hget(self.key, entry_id)

    def put(self, entry_id: str, state: RetryState) -> None:
        self.client.hset(self.key, entry_id, json.dumps(asdict(state)))
