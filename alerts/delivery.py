"""One webhook POST: connect to a checked address, send, read the answer, classify it.

`Sender` holds one keep-alive connection (`transport`: HTTP/1.1 parsed in C; http.client was most of the
worker's CPU) and is used by one thread. Each new connection resolves the host once, checks every address
(`safety`), and connects to that address while the request keeps the URL's host in its `Host` header
and, for https, in the TLS server name and certificate check. Redirects are never followed: a 3xx is a
failed delivery (a receiver that moved must be reconfigured, and following a redirect would let it send
signed items anywhere, including to private addresses).

Outcome of `deliver()`: it returns on success; otherwise it raises `EndpointGone` (410), `DeliveryError`
(with `retry_after` from a 429/503 `Retry-After` header or a platform's rate-limit code), or
`UnsafeEndpoint`. Error messages carry status codes and reasons, never the URL (it may hold a token).
"""

from __future__ import annotations

import logging
import ssl
from typing import NamedTuple
from urllib.parse import urlsplit

from alerts.formats import Format, Request
from alerts.safety import resolve
from alerts.transport import Connection, host_header
from newswatch.errors import ConnectionDropped, DeliveryError, EndpointGone, MalformedAnswer

# A receiver's Retry-After reads as the site's does (RFC 9110 10.2.3: delta-seconds or an HTTP date; None
# when absent or unreadable): one parser for both. Imported from here by tests/test_alerts_delivery.py.
from newswatch.retry_after import retry_after_seconds

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # chat platforms answer in a few bytes; a huge answer is not worth reading


class Response(NamedTuple):  # not a frozen dataclass: one is built per delivery, and a tuple is cheaper
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class Sender:
    """Posts requests over one reusable connection per (scheme, host, port). Not thread-safe: one per thread."""

    def __init__(self, *, timeout: float, allow_private: bool, tls: ssl.SSLContext | None = None):
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.timeout = timeout
        self.allow_private = allow_private
        self._conn: Connection | None = None
        self._origin: tuple | None = None
        self._tls = tls  # default: the system's trusted certificates (tests pass their own)
        self._target_of: tuple[str, tuple] = ("", ())  # the last URL, its parts and request path (checked)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._origin = None

    def _connection(self, parts, origin: tuple) -> Connection:
        conn = self._conn
        if conn is not None and self._origin == origin and conn.open and not conn.dropped_while_idle():
            return conn
        self.close()
        https, port = parts.scheme == "https", origin[2]
        addresses = resolve(parts.hostname, port, allow_private=self.allow_private)
        tls = None
        if https:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        self._conn = Connection.open_to(addresses, port, host_header(parts.hostname, port, 443 if https else 80),
                                        timeout=self.timeout, max_body=MAX_BODY, tls=tls,
                                        server_name=parts.hostname)
        self._origin = origin
        return self._conn

    def _target(self, url: str) -> tuple:
        """The URL's parts, request path and origin; the last URL's are kept (most formats post to one URL:
        `urlsplit`'s port and hostname are parsed again on each access)."""
        last, target = self._target_of
        if url != last:
            parts = urlsplit(url)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            if any(c <= " " or c == "\x7f" for c in path):  # as http.client: no request line can be split
                raise ValueError("the URL's path holds a control character or a space")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            target = (parts, path, (parts.scheme, parts.hostname, port))
            self._target_of = (url, target)
        return target

    def post(self, request: Request) -> Response:
        parts, path, origin = self._target(request.url)
        for attempt in (1, 2):
            reused = False
            try:
                conn = self._connection(parts, origin)
                reused = conn.used
                status, headers, body = conn.post(path, request.headers, request.body)
                return Response(status, headers, body)
            except ConnectionDropped:
                self.close()
                # A kept-alive connection the receiver closed as the request went: send once more on a
                # fresh one (it may have got the first: a repeat, which at-least-once allows).
                if reused and attempt == 1:
                    continue
                raise DeliveryError("connection closed by the receiver before it answered") from None
            except (ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                if reused and attempt == 1:  # the same, seen as a reset
                    continue
                raise DeliveryError(f"connection closed by the receiver ({exc.__class__.__name__})") from None
            except TimeoutError:
                self.close()
                raise DeliveryError(f"no answer within {self.timeout:g}s (timeout)") from None
            except ssl.SSLError as exc:
                self.close()
                raise DeliveryError(f"TLS failed: {exc.reason or exc.__class__.__name__}") from None
            except MalformedAnswer as exc:
                self.close()
                raise DeliveryError(str(exc)) from None
            except OSError as exc:
                self.close()
                raise DeliveryError(f"connection failed: {exc.strerror or exc.__class__.__name__}") from None
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")


def classify(response: Response, fmt: Format) -> None:
    """Return when the answer acknowledges the item; raise the error that decides what happens next."""
    status = response.status
    if 200 <= status < 300:
        fmt.check(response.body)
        return
    if status == 410:
        raise EndpointGone("HTTP 410 Gone")
    if 300 <= status < 400:
        raise DeliveryError(f"HTTP {status} redirect (redirects are not followed)")
    retry_after = None
    if status in (429, 503):
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
    raise DeliveryError(f"HTTP {status}", retry_after=retry_after)


def deliver(sender: Sender, fmt: Format, request: Request) -> Response:
    """Send one request and classify its answer (see the module docstring for the outcomes)."""
    response = sender.post(request)
    classify(response, fmt)
    return response
