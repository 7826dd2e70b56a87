"""Why a page failed, in the words of the run's summary: one counter per failed page, and a reason to log."""

from __future__ import annotations

from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadTimeoutError,
    IgnoreRequest,
)
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import DNSLookupError, TCPTimedOutError, TimeoutError

from crawler.middlewares import OffOriginRequest


def failure_kind(failure) -> str:
    """The summary counter for a failed page: http_errors, timeouts, too_large, offsite_blocked or
    connection_errors (refused, reset, cut short, DNS, anything else on the way)."""
    if failure.check(HttpError):
        return "http_errors"
    if failure.check(DownloadTimeoutError, TimeoutError, TCPTimedOutError):
        return "timeouts"
    # Scrapy cancels a download only when its body passes DOWNLOAD_MAXSIZE (declared or while reading).
    if failure.check(DownloadCancelledError):
        return "too_large"
    if failure.check(OffOriginRequest):
        return "offsite_blocked"
    # HttpCompressionMiddleware drops a body whose decompressed size passes DOWNLOAD_MAXSIZE (a gzip bomb)
    # with a plain IgnoreRequest; its message is the only public mark of the reason.
    if failure.check(IgnoreRequest) and "DOWNLOAD_MAXSIZE" in str(failure.value):
        return "too_large"
    return "connection_errors"


def failure_reason(failure) -> str:
    if failure.check(HttpError):
        return f"HTTP {failure.value.response.status}"
    if failure.check(DNSLookupError, CannotResolveHostError):
        return "DNS lookup failed"
    if failure.check(DownloadTimeoutError, TimeoutError, TCPTimedOutError):
        return "timed out"
    if failure_kind(failure) == "too_large":
        return "over the download size cap (NEWSWATCH_MAX_DOWNLOAD_SIZE)"
    return f"{failure.type.__name__}: {failure.getErrorMessage()}"
