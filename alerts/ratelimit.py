"""A message rate limit shared by every worker delivering to one endpoint.

DingTalk and WeCom bots accept about 20 messages a minute and throttle a bot that sends more; Feishu about
100. The limiter hands out send slots spaced `60 / rate` seconds apart from one Redis key per endpoint
(`keys.rate(endpoint)`), with the server's clock, so two workers on two machines together stay under the
limit. A caller reserves a slot and sleeps until it comes.
"""

from __future__ import annotations

# Returns the milliseconds to wait before the reserved slot. Redis TIME keeps all workers on one clock.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local spacing = tonumber(ARGV[1])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
redis.call('SET', KEYS[1], slot + spacing, 'PX', math.max(1000, slot + spacing - now + 1000))
return slot - now
"""


class RateLimiter:
    """Reads an endpoint's `rate_per_minute` (or its format's default)."""

    def __init__(self, client, key: str, per_minute: float):
        if per_minute <= 0:
            raise ValueError(f"rate_per_minute must be positive, got {per_minute!r}")
        self.key = key
        self.spacing_ms = max(1, int(60_000 / per_minute))
        self._script = client.register_script(_RESERVE)

    def reserve(self) -> float:
        """Seconds until this caller may send."""
        return int(self._script(keys=[self.key], args=[self.spacing_ms])) / 1000.0
