"""Scrapy settings for a revisit pass, built from newswatch's typed settings (never from the environment).

Politeness comes from configuration: concurrency, delay, AutoThrottle (with a start delay suited to a
revisit of a few pages, not Scrapy's 5 s), a download timeout of 30 s rather than Scrapy's 180 s, a size
cap, retries of transient errors with Retry-After honoured, robots.txt obeyed, no cookies.
"""

from __future__ import annotations

from crawler.frontier import frontier_settings
from newswatch import defaults
from newswatch.connection import redis_url


def scrapy_settings(settings, *, baseline: bool = False, progress=None, worker: bool = False) -> dict:
    """The Scrapy settings dict; `settings` (newswatch.config.Settings) rides along for from_crawler.
    With NEWSWATCH_FRONTIER=redis the pass's requests are shared (crawler.frontier); `worker` joins the
    leader's pass instead of starting one."""
    return {
        "BOT_NAME": "newswatch",
        "NEWSWATCH": settings,  # for the Redis extension (where the server is) and the spider
        "NEWSWATCH_BASELINE": baseline,
        "NEWSWATCH_PROGRESS": progress,
        # Flat, typed settings of the crawl's components (crawler/seen.py, conditional.py, pipelines.py,
        # analysis_processes.py), taken from newswatch's one declaration of each.
        "NEWSWATCH_KEY_PREFIX": settings.key_prefix,
        "NEWSWATCH_SEEN_DAYS": settings.seen_days,
        "NEWSWATCH_MAX_FETCH_FAILURES": settings.max_fetch_failures,
        "NEWSWATCH_DEDUPE_RETENTION_DAYS": settings.dedupe_retention_days,
        "NEWSWATCH_DEDUPE_MIN_CHARS": settings.dedupe_min_chars,
        "NEWSWATCH_ANALYSIS_PROCESSES": settings.effective_analysis_processes,
        "NEWSWATCH_ANALYSIS_TIMEOUT": settings.analysis_timeout,
        "NEWSWATCH_TOPICS": str(settings.topics) if settings.topics else None,
        "NEWSWATCH_CONDITIONAL_GET": True,
        "USER_AGENT": settings.effective_user_agent,
        "ROBOTSTXT_OBEY": True,
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "CONCURRENT_REQUESTS": settings.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": settings.concurrency,
        # Scrapy hands each callback's output to CONCURRENT_ITEMS (default 100) asyncio tasks, created anew
        # for every response: 100 tasks per article page, most of the pass's CPU in the profile. The
        # pipelines are synchronous, so items never overlapped anyway; one also keeps the release order.
        "CONCURRENT_ITEMS": 1,
        # Responses waiting for their analysis stay in Scrapy's scraper slot, and the downloader stops when
        # they add up to this many bytes. Scrapy's 5 MB is ~500 pages when the crawl downloads faster than
        # the analysis process keeps up (no download delay): the crawler held them all, with their async
        # generator chains, for the whole pass (+17 MiB peak RSS, and more for the GC to walk). 1 MB still
        # keeps ~100 pages queued ahead of the analysis; with a download delay the queue never fills.
        "SCRAPER_SLOT_MAX_ACTIVE_SIZE": 1_000_000,
        # Scrapy re-parses a generator callback's source (inspect + ast) on nearly every response to warn
        # about `return value` in generators: its cache is keyed by bound methods, a new one per request.
        # A development-time lint, 10% of a pass's CPU; the spider's callbacks never return values.
        "WARN_ON_GENERATOR_RETURN_VALUE": False,
        "DOWNLOAD_DELAY": settings.download_delay,
        "RANDOMIZE_DOWNLOAD_DELAY": True,
        "AUTOTHROTTLE_ENABLED": settings.autothrottle,
        "AUTOTHROTTLE_START_DELAY": max(settings.download_delay, defaults.AUTOTHROTTLE_START_DELAY),
        "AUTOTHROTTLE_MAX_DELAY": defaults.AUTOTHROTTLE_MAX_DELAY,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": 1.0,
        "DOWNLOAD_TIMEOUT": settings.download_timeout,
        "DOWNLOAD_MAXSIZE": settings.max_download_size,
        "DOWNLOAD_WARNSIZE": max(settings.max_download_size // 4, 1024),
        "RETRY_ENABLED": settings.retry_times > 0,
        "RETRY_TIMES": settings.retry_times,
        "RETRY_HTTP_CODES": [429, 500, 502, 503, 504, 522, 524, 408],
        "NEWSWATCH_RETRY_AFTER_CAP": settings.retry_after_cap,
        "REDIRECT_MAX_TIMES": 5,
        "METAREFRESH_ENABLED": False,
        "DNS_TIMEOUT": min(settings.download_timeout, 30),
        # Scrapy installs no log handler of its own: its records go to newswatch's (see crawler.run).
        "LOG_ENABLED": False,
        "LOG_INSTALL_ROOT_HANDLER": False,
        "LOG_LEVEL": settings.log_level,
        "STATS_DUMP": False,
        "LOGSTATS_INTERVAL": 0,
        "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
        "DOWNLOADER_MIDDLEWARES": {
            # Our retry honours Retry-After; it replaces Scrapy's, at the same place in the chain.
            "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
            "crawler.middlewares.RetryAfterMiddleware": 550,
            # Before anything is sent: requests (and redirects) that leave the site's origin are dropped.
            "crawler.middlewares.OriginGuardMiddleware": 50,
            # robots.txt kept in Redis across passes, its Crawl-delay honoured: replaces Scrapy's, in its place.
            "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
            "crawler.robots.CachedRobotsTxtMiddleware": 100,
            # Validators on first list pages; beside Scrapy's HttpCache slot (900), which is not used.
            "crawler.conditional.ConditionalGetMiddleware": 880,
        },
        "SPIDER_MIDDLEWARES": {},
        "ITEM_PIPELINES": {
            "crawler.pipelines.DedupePipeline": 200,
            "crawler.pipelines.PublishPipeline": 300,
        },
        "EXTENSIONS": {
            "scrapy.extensions.telnet.TelnetConsole": None,
            # The crawl's one Redis client first: the others take it from here.
            "crawler.redis_client.RedisClient": 100,
            "crawler.seen.SeenRecord": 110,
            "crawler.analysis_processes.AnalysisProcesses": 120,
            "crawler.progress.Progress": 500,
            "crawler.frontier.SharedPass": 400,
        },
        **_frontier(settings, worker),
    }


def _frontier(settings, worker: bool) -> dict:
    if settings.frontier == "memory":
        return {}
    return frontier_settings(settings, redis_url(settings), "worker" if worker else "leader")
