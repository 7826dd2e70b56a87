"""Every Redis key name, stream name and threshold of newswatch, in one place (the scrapy-redis way).

Key names are templates under the configured prefix (`NEWSWATCH_KEY_PREFIX`, default `newswatch`); build
them with `Keys(prefix)`, never by hand, so that a test can use its own prefix and no two installations
sharing one Redis collide.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SITE_URL = "https://daydaynews.cc"
DEFAULT_CATEGORIES = ("international",)
DEFAULT_TIMEZONE = "Asia/Shanghai"

# Schedule
# Once a minute (+ up to 10 s): an idle pass is one conditional request (robots.txt is kept 24 h, see
# ROBOTS_MAX_AGE), so this is about 55 requests to the site per idle hour and a new article reaches the
# webhook in about 40 s (p99 under 80 s); docs/performance.md, "Time to alert at the default settings".
DEFAULT_INTERVAL = 60
DEFAULT_JITTER = 10
MISFIRE_GRACE_TIME = 300
RUN_TIMEOUT = 900  # a revisit that runs longer than this is killed with its children
SENTRY_MONITOR_SLUG = "newswatch-revisit"

# Politeness
DEFAULT_CONCURRENCY = 4
DEFAULT_DOWNLOAD_DELAY = 1.0
DEFAULT_DOWNLOAD_TIMEOUT = 30.0
AUTOTHROTTLE_START_DELAY = 1.0  # Scrapy's 5 s is meant for big crawls, not a revisit of a few pages
AUTOTHROTTLE_MAX_DELAY = 30.0
DEFAULT_MAX_DOWNLOAD_SIZE = 8 * 1024 * 1024
DEFAULT_RETRY_TIMES = 3
DEFAULT_RETRY_AFTER_CAP = 300.0
DEFAULT_USER_AGENT = "newswatch/{version} (+https://github.com/newswatch/newswatch; news monitor)"
DEFAULT_MAX_PAGES = 5  # list pages per category per pass
DEFAULT_SEEN_DAYS = 90
DEFAULT_MAX_FETCH_FAILURES = 5
# robots.txt is kept in Redis across passes (newswatch/robots.py): RFC 9309 allows up to 24 h; a site's
# Cache-Control may shorten that, but not below an hour; an expired copy is kept a week longer for its
# validators (the refresh is conditional) and to stand in while the site fails to answer.
ROBOTS_MAX_AGE = 24 * 3600
ROBOTS_MIN_AGE = 3600
ROBOTS_KEEP_STALE = 7 * 24 * 3600
# A 429 or 503 holds every request to the site until its Retry-After has passed, across passes
# (newswatch/retry_after.py): honoured up to a day; without one, 2 minutes, doubled for each refusal in a
# row up to an hour.
RETRY_AFTER_MAX = 24 * 3600
RETRY_AFTER_DEFAULT = 120.0
RETRY_AFTER_DEFAULT_MAX = 3600.0

# Dedupe
DEFAULT_DEDUPE_RETENTION_DAYS = 30
DEFAULT_DEDUPE_MIN_CHARS = 80
# Near-duplicate decision (crawler/dedupe.py). Two articles are one story when their whole-text SimHash
# fingerprints differ in at most DEDUPE_MAX_DISTANCE bits, or when at least DEDUPE_CONTAINMENT_PER_MILLE/1000
# of the new one's clause text (and DEDUPE_MIN_SHARED_CHARS characters) is in the old one.
# Only clauses of DEDUPE_MIN_CLAUSE_CHARS or more whose hash is 0 modulo DEDUPE_CLAUSE_SAMPLE count (the
# same ones in every copy, so the share is estimated without bias at half the memory).
DEDUPE_MAX_DISTANCE = 3  # at most 3: the index cuts a fingerprint into 4 blocks, one of which must match exactly
DEDUPE_CONTAINMENT_PER_MILLE = 600
DEDUPE_MIN_SHARED_CHARS = 60
DEDUPE_MIN_CLAUSE_CHARS = 8
DEDUPE_CLAUSE_SAMPLE = 2
# The index keeps articles in period hashes of half the retention (rounded up), each expiring whole: a
# lookup then reads at most DEDUPE_INDEX_KEYS of them whatever the retention, and an article's data leaves
# memory at most one period after its retention.
DEDUPE_INDEX_KEYS = 4


def fp_period_days(retention_days: int) -> int:
    """Days per period hash: a window of retention + 1 days then touches at most DEDUPE_INDEX_KEYS periods."""
    return max(1, -(-retention_days // (DEDUPE_INDEX_KEYS - 2)))


# Stream
DEFAULT_STREAM_RETENTION_DAYS = 7
ITEM_EVENT_TYPE = "article.new"

# Alerts
DEFAULT_WEBHOOK_FORMAT = "standard"
WEBHOOK_FORMATS = ("standard", "slack", "feishu", "dingtalk", "wecom")
DEFAULT_WEBHOOK_MAX_ATTEMPTS = 8
DEFAULT_WEBHOOK_MAX_AGE = 24 * 3600
DEFAULT_WEBHOOK_TIMEOUT = 10.0
WEBHOOK_BACKOFF_BASE = 2.0
WEBHOOK_BACKOFF_CAP = 3600.0
WEBHOOK_CLAIM_IDLE = 60.0  # a live worker touches its pending entries well within this
WEBHOOK_RATE_PER_MINUTE = {"dingtalk": 20, "wecom": 20, "feishu": 100, "slack": 60}  # platform limits
ALERT_CONSUMER_GROUP = "alerts:{name}"

# Daemon
DEFAULT_LEADER_TTL = 30
DEFAULT_HISTORY_SIZE = 200
DEFAULT_FAILED_RUNS_ALERT = 3


@dataclass(frozen=True)
class Keys:
    """The Redis key names of one installation."""

    prefix: str = "newswatch"

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def items(self) -> str:
        """The item stream: one entry per genuinely new article (fields `data`, `id`, `url`)."""
        return self._k("items")

    @property
    def dead(self) -> str:
        """Dead letters: deliveries that failed for good (fields `group`, `entry`, `id`, `error`, `data`)."""
        return self._k("dead")

    @property
    def seen(self) -> str:
        """Hash canonical URL -> time seen (epoch seconds); expiry is by age, swept in each pass."""
        return self._k("seen")

    @property
    def seen_items(self) -> str:
        """Hash item id -> time its item was queued (or recorded by a baseline), epoch seconds: publish-once
        is decided by the article, not its URL (one article is reachable under several category slugs);
        expiry by age as for `seen`."""
        return self._k("seen-items")

    @property
    def failures(self) -> str:
        """Hash canonical URL -> failed fetch count, so a broken page is retried a bounded number of times."""
        return self._k("fetch-failures")

    def fp_bucket(self, day: int) -> str:
        """Fingerprint index of one day, as versions before the period hashes kept it (`n`: its count);
        read only to move them into the period hashes, and to count them until then."""
        return self._k("fp", str(day))

    def fp_period(self, period_days: int, period: int) -> str:
        """Fingerprint index records of one period of `period_days` days (they expire whole, even on 6.2);
        its fields `c<day>` count the articles indexed each day (crawler/dedupe_lua.py: the layout)."""
        return self._k("fpp", str(period_days), str(period))

    def fp_window(self, now: float, retention_days: int, size: int | None = None) -> list[tuple[str, range]]:
        """The period hashes a lookup reads at `now` (epoch seconds), today's first, each with the days of the
        retention window it holds; `size`: periods of another length than this retention's (those an
        earlier retention wrote: newswatch/fp_periods.py)."""
        size = fp_period_days(retention_days) if size is None else size
        today = int(now // 86400)
        first = today - retention_days
        return [(self.fp_period(size, p), range(max(p * size, first), min((p + 1) * size - 1, today) + 1))
                for p in range(today // size, first // size - 1, -1)]

    @property
    def fp_periods_pattern(self) -> str:
        """SCAN pattern of every period hash, whatever its length."""
        return self._k("fpp", "*")

    @property
    def fp_lengths(self) -> str:
        """Set of the period lengths (days) the index has written (newswatch/fp_periods.py)."""
        return self._k("fpp-lengths")

    def reprints(self, item_id: str) -> str:
        """List of reprint URLs recorded against an original item."""
        return self._k("reprints", item_id)

    @property
    def runs(self) -> str:
        """Run history: a list of JSON records, newest first, trimmed to a bound."""
        return self._k("runs")

    @property
    def leader(self) -> str:
        """The scheduler's leader lock (value: the holder's id, with a TTL the leader renews)."""
        return self._k("leader")

    @property
    def next_run(self) -> str:
        return self._k("next-run")

    @property
    def failed_streak(self) -> str:
        return self._k("failed-streak")

    def robots(self, origin: str) -> str:
        """Hash: the robots.txt of an origin (scheme://host:port) with its validators, expiry, Crawl-delay
        and the time of our last request while that delay applied (newswatch/robots.py)."""
        return self._k("robots", origin)

    def retry_after(self, origin: str) -> str:
        """Hash: until when no request goes to an origin, after its 429/503, with the status, the Retry-After,
        the wait chosen and the refusals in a row (newswatch/retry_after.py)."""
        return self._k("retry-after", origin)

    @property
    def conditional(self) -> str:
        """Hash list-page URL -> JSON {etag, last_modified}, for conditional revisits."""
        return self._k("conditional")

    def group(self, endpoint: str) -> str:
        """Consumer group of one webhook endpoint."""
        return ALERT_CONSUMER_GROUP.format(name=endpoint)

    def retry(self, endpoint: str) -> str:
        """Hash stream-entry id -> JSON {attempts, next_at, first_at, error}: retry state survives restarts."""
        return self._k("alerts", endpoint, "retry")

    def disabled(self, endpoint: str) -> str:
        """Set when an endpoint answered 410; its items wait until `newswatch alerts --enable NAME`."""
        return self._k("alerts", endpoint, "disabled")

    def rate(self, endpoint: str) -> str:
        return self._k("alerts", endpoint, "rate")

    def consumer_lease(self, endpoint: str, consumer: str) -> str:
        """Held (with a TTL) by the live worker using a consumer name, so two never share one."""
        return self._k("alerts", endpoint, "consumer", consumer)

    @property
    def frontier_requests(self) -> str:
        """scrapy-redis request queue (a sorted set) of a shared pass (NEWSWATCH_FRONTIER=redis)."""
        return self._k("frontier", "requests")

    @property
    def frontier_dupefilter(self) -> str:
        """scrapy-redis request fingerprints (a set) of the current shared pass; emptied when one starts."""
        return self._k("frontier", "dupefilter")

    @property
    def frontier_pass(self) -> str:
        """Set (with a TTL) while a shared pass is open: workers join it and stay until it ends."""
        return self._k("frontier", "pass")

    @property
    def frontier_counts(self) -> str:
        """The counters of a shared pass (a hash), each process's added as it goes idle; the leader's run
        record reports these, since any process may fetch any page (the list pages too)."""
        return self._k("frontier", "counts")

    def frontier_active(self, member: str) -> str:
        """Set (with a TTL) while one process of a shared pass is busy."""
        return self._k("frontier", "active", member)
