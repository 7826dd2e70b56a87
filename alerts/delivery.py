"""One webhook POST: connect to a checked address, send, read the answer, classify it.

`Sender` holds one keep-alive connection and is used by one thread. Each new connection resolves the host
once, checks every address (`safety`), and connects to that address while the request keeps the URL's
host in its `Host` header and, for https, in the TLS server name and certificate check. Redirects are
never followed: a 3xx is a failed delivery (a receiver that moved must be reconfigured, and following a
redirect would let it send signed items anywhere, including to private addresses).

Outcome of `deliver()`: it returns on success; otherwise it raises `EndpointGone` (410), `DeliveryError`
(with `retry_after` from a 429/503 `Retry-After` header or a platform's rate-limit code), or
`UnsafeEndpoint`. Error messages carry status codes and reasons, never the URL (it may hold a token).
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from alerts.formats import Format, Request
from alerts.safety import resolve
from newswatch.errors import DeliveryError, EndpointGone

# A receiver's Retry-After reads as the site's does (RFC 9110 10.2.3: delta-seconds or an HTTP date; None
# when absent or unreadable): one parser for both. Imported from here by tests/test_alerts_delivery.py.
from newswatch.retry_after import retry_after_seconds

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # chat platforms answer in a few bytes; a huge answer is not worth reading


@dataclass(frozen=True)
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP connection to an address chosen (and checked) beforehand, not to whatever DNS says now."""

    def __init__(self, host, port, *, addresses, connect_timeout, read_timeout, tls=None):
        super().__init__(host, port, timeout=connect_timeout)
        self._addresses = addresses
        self._read_timeout = read_timeout
        self._tls = tls

    def connect(self):
        error: OSError | None = None
        for family, address in self._addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect((address, self.port))
                break
            except OSError as exc:
                sock.close()
                error = exc
        else:
            raise error or OSError("no address to connect to")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self._read_timeout)
        if self._tls is not None:
            sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        self.sock = sock

    def _send_output(self, message_body=None, encode_chunked=False):
        # The head and a bytes body in one send, not two: one system call and one release of the GIL
        # fewer per request, and the receiver reads it at once (http.client sent them together until 3.0).
        if isinstance(message_body, bytes) and not encode_chunked:
            self._buffer.extend((b"", b""))
            message = b"\r\n".join(self._buffer) + message_body
            del self._buffer[:]
            self.send(message)
            return
        super()._send_output(message_body, encode_chunked)


class Sender:
    """Posts requests over one reusable connection per (scheme, host, port). Not thread-safe: one per thread."""

    def __init__(self, *, timeout: float, allow_private: bool):
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.timeout = timeout
        self.allow_private = allow_private
        self._conn: _PinnedConnection | None = None
        self._origin: tuple | None = None
        self._tls: ssl.SSLContext | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._origin = None

    def _connection(self, parts) -> tuple[_PinnedConnection, bool]:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        origin = (parts.scheme, parts.hostname, port)
        if self._conn is not None and self._origin == origin:
            return self._conn, True
        self.close()
        addresses = resolve(parts.hostname, port, allow_private=self.allow_private)
        tls = None
        if parts.scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        self._conn = _PinnedConnection(parts.hostname, port, addresses=addresses,
                                       connect_timeout=self.timeout, read_timeout=self.timeout, tls=tls)
        self._origin = origin
        return self._conn, False

    def post(self, request: Request) -> Response:
        parts = urlsplit(request.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for attempt in (1, 2):
            conn, reused = self._connection(parts)
            try:
                conn.request("POST", path, body=request.body, headers=request.headers)
                answer = conn.getresponse()
                body = answer.read(MAX_BODY + 1)
                if len(body) > MAX_BODY or answer.will_close:
                    self.close()
                return Response(answer.status, answer.headers, body[:MAX_BODY])
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                # A kept-alive connection the receiver had already closed: send once more on a fresh one.
                if reused and attempt == 1:
                    continue
                raise DeliveryError(f"connection closed by the receiver ({exc.__class__.__name__})") from None
            except TimeoutError:
                self.close()
                raise DeliveryError(f"no answer within {self.timeout:g}s (timeout)") from None
            except ssl.SSLError as exc:
                self.close()
                raise DeliveryError(f"TLS failed: {exc.reason or exc.__class__.__name__}") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc.__class__.__name__
                raise DeliveryError(f"connection failed: {reason}") from None
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
