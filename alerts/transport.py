"""One HTTP/1.1 keep-alive connection to a checked address; its answers are parsed in C by httptools (llhttp).

Why not http.client: profiling the worker (docs/performance.md, section 6) put 57 % of its GIL time in
http.client's POST, half of that in parsing the answer's headers through the `email` package. A webhook
client needs little of HTTP, and this module does only that:

* a request with a Content-Length body, head and body in one write (TCP_NODELAY: nothing waits for an ACK);
* an answer framed by Content-Length, by chunks, or by the end of the connection; interim 1xx answers
  skipped; `Connection: close` (or HTTP/1.0 without keep-alive) closes the connection after the answer;
* at most `max_body` bytes of the body are kept; the connection is closed when there was more; a head
  longer than MAX_HEAD is refused (llhttp would buffer a header of any length);
* timeouts on the connect and on each send and receive, as http.client's; on a plain connection they are
  the kernel's (SO_RCVTIMEO / SO_SNDTIMEO), which saves the poll() Python makes before each call otherwise;
  and, unlike http.client, one for the whole answer: a receiver that trickles it a byte at a time within
  each receive's timeout is cut off at the first read past the timeout (so within twice the timeout),
  instead of holding a delivery thread for as long as it likes.

A receiver may close a kept-alive connection whenever it is idle; a request sent as it does so gets no
answer at all (`ConnectionDropped`), and the caller may send it again on a fresh connection (a repeat is
allowed, a loss is not). A connection idle for `IDLE_CHECK` seconds is first checked for such a close, so
that in the usual case nothing is sent into a dead connection.
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
import time

import httptools

from newswatch.errors import ConnectionDropped, MalformedAnswer

RECV_SIZE = 65536
MAX_HEAD = 64 * 1024  # bytes of status line and headers (1xx heads included) read before giving up
IDLE_CHECK = 1.0  # seconds idle after which a kept-alive connection is checked before it is used again
_HEADER_LINE = "%s: %s\r\n"


def host_header(host: str, port: int, default_port: int) -> str:
    """The Host header of a URL's host and port, as http.client writes it."""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    else:
        host = host.encode("idna").decode("ascii")
    return host if port == default_port else f"{host}:{port}"


class Connection:
    """One connection; one request at a time, by one thread. `post` returns (status, headers, body)."""

    def __init__(self, sock: socket.socket, host: str, *, timeout: float, max_body: int):
        self.sock = sock
        self.host = host  # the Host header
        self.max_body = max_body
        self.open = True
        self.used = False  # a request was answered on it: the receiver may have closed it since
        self._idle_since = time.monotonic()
        self._parser = httptools.HttpResponseParser(self)
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._complete = False
        self._stray = False  # more bytes after the answer: the connection cannot be trusted again
        self._seen = False  # any byte of the answer arrived
        self._eof_ends = False  # the answer has no length: it ends when the connection does
        self._keep_alive = False  # as the answer said (asked of the parser while it reads the answer)
        self._head_done = False  # the final answer's headers are complete
        self._timeout = timeout

    @classmethod
    def open_to(cls, addresses, port: int, host: str, *, timeout: float, max_body: int,
                tls: ssl.SSLContext | None = None, server_name: str | None = None) -> Connection:
        """Connect to the first of `addresses` ((family, address) pairs) that answers."""
        error: OSError | None = None
        for family, address in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect((address, port))
                break
            except OSError as exc:
                sock.close()
                error = exc
        else:
            raise error or OSError("no address to connect to")
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=server_name)  # handshake within the timeout
            else:
                seconds = int(timeout)
                limit = struct.pack("ll", seconds, int((timeout - seconds) * 1e6))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
                sock.settimeout(None)  # blocking: the kernel times each call out (EAGAIN)
        except BaseException:
            sock.close()
            raise
        return cls(sock, host, timeout=timeout, max_body=max_body)

    def close(self) -> None:
        self.open = False
        self.sock.close()

    def dropped_while_idle(self) -> bool:
        """Whether the receiver closed (or reset) this connection while it was idle: readable means an EOF,
        a reset or stray bytes, none of which a request should be sent into."""
        if not self.used or time.monotonic() - self._idle_since < IDLE_CHECK:
            return False
        poller = select.poll()  # not select(): it fails on descriptors past 1023
        poller.register(self.sock, select.POLLIN)
        if not poller.poll(0):
            return False
        if not isinstance(self.sock, ssl.SSLSocket):
            return True
        # TLS: a server's session tickets make the socket readable too; only the TLS layer can tell
        self.sock.setblocking(False)
        try:
            self.sock.recv(1)  # an EOF or stray bytes: either way not to be used again
            return True
        except ssl.SSLWantReadError:
            return False
        except OSError:
            return True
        finally:
            self.sock.settimeout(self._timeout)

    def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        # (the headers' lines joined by a C loop: a generator was a Python frame per header per request)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAccept-Encoding: identity\r\n"
                f"{''.join(map(_HEADER_LINE.__mod__, headers.items()))}Content-Length: {len(body)}\r\n\r\n")
        # No header may start another line or end the head early (http.client refuses these too)
        breaks = len(headers) + 5  # three in the first line's piece, two in the last, one in each header's
        if head.count("\n") != breaks or head.count("\r") != breaks:
            raise ValueError("a header name or value holds a line break")
        self._status, self._headers, self._body, self._size = 0, {}, [], 0
        self._complete = self._stray = self._seen = self._eof_ends = self._keep_alive = self._head_done = False
        try:
            self.sock.sendall(head.encode("latin-1") + body)
            self._read(time.monotonic() + self._timeout)
        except BlockingIOError:  # SO_SNDTIMEO or SO_RCVTIMEO ran out
            raise TimeoutError("no answer in time") from None
        self.used = True
        if self._stray or self._size > self.max_body or not self._keep_alive:
            self.close()
        self._idle_since = time.monotonic()
        body = b"".join(self._body)
        return self._status, self._headers, body[:self.max_body]

    def _read(self, deadline: float) -> None:
        parser, recv = self._parser, self.sock.recv
        head = 0
        while not self._complete:
            data = recv(RECV_SIZE)
            if not data:
                self.open = False
                if self._eof_ends:
                    return
                if not self._seen:
                    raise ConnectionDropped("the receiver closed the connection without answering")
                raise MalformedAnswer("the receiver closed the connection in the middle of its answer")
            self._seen = True
            if not self._head_done:
                head += len(data)
                if head > MAX_HEAD:
                    raise MalformedAnswer("the answer's head is too long")
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                raise MalformedAnswer("the receiver switched protocols") from None
            except httptools.HttpParserError as exc:
                if self._complete:  # the answer, then something else: take the answer, drop the connection
                    self._stray = True
                    return
                raise MalformedAnswer(f"unreadable answer ({exc})") from None
            if self._size > self.max_body:  # the rest of a huge body is not worth reading
                return
            if not self._complete and time.monotonic() > deadline:
                raise TimeoutError("the answer did not arrive in time")

    # -- httptools callbacks (one answer, and any interim 1xx answers before it) ----------------------
    def on_message_begin(self) -> None:
        if self._complete:
            self._stray = True
            return
        self._headers = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._complete:
            return
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self._headers[key] = f"{self._headers[key]}, {text}" if key in self._headers else text

    def on_headers_complete(self) -> None:
        if self._complete:
            return
        status = self._status = self._parser.get_status_code()
        self._head_done = status >= 200
        if status >= 200 and status not in (204, 304):
            self._eof_ends = ("content-length" not in self._headers
                              and "chunked" not in self._headers.get("transfer-encoding", "").lower())

    def on_body(self, data: bytes) -> None:
        if self._complete:
            return
        if self._size <= self.max_body:
            self._body.append(data)
        self._size += len(data)

    def on_message_complete(self) -> None:
        if self._status >= 200 and not self._complete:  # an interim 1xx answer is followed by the real one
            self._complete = True
            self._keep_alive = self._parser.should_keep_alive()  # once the message is over, llhttp forgets
