"""Named exceptions, in one flat module (the rq style).

`ConfigError` and `InputError` are the user's mistakes: the CLI prints their message as one line and
exits 2. Everything else is a run-time failure that is logged, counted and reported, never lost silently.
"""


class NewswatchError(Exception):
    """Base of every error newswatch raises on purpose."""


class ConfigError(NewswatchError):
    """A setting has a wrong type or value. The message names the setting and what was expected."""

    def __init__(self, setting: str, message: str):
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class InputError(NewswatchError):
    """A command's input (a file, a line of it, an argument) is malformed."""


class RedisUnavailable(NewswatchError):
    """The configured Redis server cannot be reached, or the embedded one cannot be started."""


class AnalysisProcessDied(NewswatchError):
    """The analysis process died while it held a page (killed, out of memory, a crash in C code); the page
    stays unseen and is tried again on the next pass."""


class AnalysisTimedOut(NewswatchError):
    """One page kept the analysis process busy past NEWSWATCH_ANALYSIS_TIMEOUT (a hostile or pathological
    page): the page counts as a failed fetch, the process is replaced, the pages behind it are retried."""


class CrawlFailed(NewswatchError):
    """A revisit pass could not crawl the site at all (no list page answered)."""


class CrawlInterrupted(NewswatchError):
    """A revisit pass was stopped by a signal before it finished: recorded as "interrupted", not "ok"."""


class TopicFileError(ConfigError):
    """The topic file does not parse or does not describe a topic; names the file and the line."""

    def __init__(self, path: str, message: str, line: int | None = None):
        where = f"{path}:{line}" if line else str(path)
        super().__init__("NEWSWATCH_TOPICS", f"{where}: {message}")


class DeliveryError(NewswatchError):
    """A webhook delivery attempt failed; `retry_after` (seconds) is set when the receiver asked for it."""

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class EndpointGone(DeliveryError):
    """The endpoint answered 410 Gone: it is disabled until a user enables it again."""

    def __init__(self, message: str):
        super().__init__(message, permanent=True)


class ConnectionDropped(NewswatchError, ConnectionError):
    """The receiver closed a connection before any byte of its answer: on a kept-alive connection, the
    request may be sent again on a fresh one (a repeat is allowed, a loss is not)."""


class MalformedAnswer(NewswatchError):
    """A receiver's answer is not HTTP/1.1 this client can read, or was cut off in the middle."""


class UnsafeEndpoint(NewswatchError):
    """A webhook URL resolves to a loopback, private, link-local or metadata address and that is not allowed."""
