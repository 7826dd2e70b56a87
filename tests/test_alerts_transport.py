"""The webhook transport (alerts/transport.py) through `Sender`, against real servers on loopback that answer
with exactly the bytes each case needs: lengths, chunks, closes, drops, interim answers, hangs, and TLS."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading

import pytest

from alerts import transport
from alerts.delivery import MAX_BODY, Sender, classify
from alerts.formats import Request, StandardFormat
from newswatch.config import Endpoint
from newswatch.errors import DeliveryError

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RawServer:
    """A TCP server on 127.0.0.1: each connection runs `script(server, conn, rfile)` in a thread of its own.

    It counts connections and records each request's body (`read`), so a test sees what was sent, how
    often and over how many connections."""

    def __init__(self, script, tls: ssl.SSLContext | None = None):
        self.script = script
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.bodies: list[bytes] = []
        self.closed = threading.Event()  # set by scripts that close a connection, once it is closed
        self.release = threading.Event()  # set at the end: hanging scripts return
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    url = property(lambda self: f"http://127.0.0.1:{self.port}/hook")

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            with conn, conn.makefile("rb") as rfile:
                self.script(self, conn, rfile)
        except OSError:
            pass

    def read(self, rfile) -> bytes | None:
        """One request's body (None when the client closed the connection)."""
        length = None
        while True:
            line = rfile.readline()
            if not line:
                return None
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        body = rfile.read(length or 0)
        with self._lock:
            self.bodies.append(body)
        return body

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.listener.close()


def request(url: str, body: bytes = b'{"n": 1}', **headers) -> Request:
    return Request(url, {"content-type": "application/json", **headers}, body)


def serve_each(*answers: bytes):
    """A script that answers every request on a connection with `answers` (written one after the other)."""
    def script(server, conn, rfile):
        while server.read(rfile) is not None:
            for piece in answers:
                conn.sendall(piece)
    return script


@pytest.fixture
def sender():
    sender = Sender(timeout=2, allow_private=True)
    yield sender
    sender.close()


def test_keeps_the_connection_alive_across_requests(sender):
    with RawServer(serve_each(OK)) as server:
        answers = [sender.post(request(server.url, f'{{"n": {n}}}'.encode())) for n in range(3)]
    assert [(a.status, a.body) for a in answers] == [(200, b"ok")] * 3
    assert server.bodies == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    assert server.connections == 1


def test_headers_body_and_retry_after_of_a_429(sender):
    answer = b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nX-A: 1\r\nX-A: 2\r\nContent-Length: 4\r\n\r\nslow"
    with RawServer(serve_each(answer)) as server:
        response = sender.post(request(server.url))
    assert (response.status, response.body, response.headers["x-a"]) == (429, b"slow", "1, 2")
    with pytest.raises(DeliveryError) as caught:
        classify(response, StandardFormat(Endpoint(name="t", url=server.url)))
    assert caught.value.retry_after == 7.0


def test_chunked_answer_in_pieces(sender):
    pieces = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", b"lo\r\n6\r\n world\r\n",
              b"0\r\n\r\n")
    with RawServer(serve_each(*pieces)) as server:
        first = sender.post(request(server.url))
        second = sender.post(request(server.url))
    assert first.body == second.body == b"hello world"
    assert server.connections == 1


def test_connection_close_opens_a_new_connection(sender):
    def script(server, conn, rfile):
        server.read(rfile)
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")

    with RawServer(script) as server:
        assert [sender.post(request(server.url)).status for _ in range(2)] == [200, 200]
    assert server.connections == 2 and len(server.bodies) == 2


def test_answer_without_length_ends_with_the_connection(sender):
    def script(server, conn, rfile):
        server.read(rfile)
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n{\"errcode\": 0}")

    with RawServer(script) as server:
        bodies = [sender.post(request(server.url)).body for _ in range(2)]
    assert bodies == [b'{"errcode": 0}'] * 2
    assert server.connections == 2


def test_interim_1xx_answers_are_skipped(sender):
    with RawServer(serve_each(b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
                              b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone")) as server:
        answers = [sender.post(request(server.url)) for _ in range(2)]
    assert [(a.status, a.body, "link" in a.headers) for a in answers] == [(201, b"done", False)] * 2
    assert server.connections == 1


def test_a_kept_alive_connection_dropped_with_the_request_is_sent_again_once(sender):
    def script(server, conn, rfile):
        if server.connections == 1:  # the first connection answers one request, then drops the next
            server.read(rfile)
            conn.sendall(OK)
            server.read(rfile)
            return
        serve_each(OK)(server, conn, rfile)

    with RawServer(script) as server:
        sender.post(request(server.url, b"1"))
        assert sender.post(request(server.url, b"2")).status == 200
    assert server.bodies == [b"1", b"2", b"2"]  # a repeat, never a loss
    assert server.connections == 2


def test_a_request_dropped_on_the_fresh_connection_too_is_a_failure(sender):
    def script(server, conn, rfile):
        if server.connections == 1:
            server.read(rfile)
            conn.sendall(OK)
        server.read(rfile)  # then drops the connection without answering

    with RawServer(script) as server:
        sender.post(request(server.url, b"1"))
        with pytest.raises(DeliveryError, match="closed by the receiver"):
            sender.post(request(server.url, b"2"))
    assert server.bodies == [b"1", b"2", b"2"] and server.connections == 2  # sent again once, no more


def test_a_connection_closed_while_idle_is_not_sent_into(sender, monkeypatch):
    monkeypatch.setattr(transport, "IDLE_CHECK", 0.0)

    def script(server, conn, rfile):
        if server.connections == 1:
            server.read(rfile)
            conn.sendall(OK)
            conn.shutdown(socket.SHUT_WR)  # closed for the client; what it still sends is recorded
            server.closed.set()
            server.read(rfile)
            return
        serve_each(OK)(server, conn, rfile)

    with RawServer(script) as server:
        sender.post(request(server.url, b"1"))
        assert server.closed.wait(5)
        assert sender.post(request(server.url, b"2")).status == 200
    assert server.bodies == [b"1", b"2"]
    assert server.connections == 2


def test_a_fresh_connection_closed_without_an_answer_is_a_failure_not_a_resend(sender):
    def script(server, conn, rfile):
        server.read(rfile)

    with RawServer(script) as server:
        with pytest.raises(DeliveryError, match="closed by the receiver"):
            sender.post(request(server.url))
    assert server.connections == 1 and len(server.bodies) == 1


def test_an_answer_cut_off_is_a_failure(sender):
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    with RawServer(lambda server, conn, rfile: (server.read(rfile), conn.sendall(cut))) as server:
        with pytest.raises(DeliveryError, match="middle of its answer"):
            sender.post(request(server.url.replace("/hook", "/hook?x=1")))
    assert len(server.bodies) == 1


def test_an_unreadable_answer_is_a_failure(sender):
    with RawServer(serve_each(b"SPDY/9 what\r\n\r\n")) as server:
        with pytest.raises(DeliveryError, match="unreadable answer"):
            sender.post(request(server.url))


def test_a_server_that_never_answers_times_out(sender):
    def script(server, conn, rfile):
        server.read(rfile)
        server.release.wait(30)

    quick = Sender(timeout=0.3, allow_private=True)
    with RawServer(script) as server:
        with pytest.raises(DeliveryError, match="timeout"):
            quick.post(request(server.url))
        # a timed-out connection is never reused: its late answer would be taken for the next request's
        with pytest.raises(DeliveryError, match="timeout"):
            quick.post(request(server.url))
    assert server.connections == 2


def test_an_answer_trickled_within_each_receive_timeout_is_cut_off(sender):
    # every byte comes well within the 0.3 s a receive may wait, but the whole answer would take 6 s
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 40
    sent = []

    def script(server, conn, rfile):
        server.read(rfile)
        for i in range(len(answer)):
            if server.release.wait(0.1):
                return
            conn.sendall(answer[i:i + 1])
            sent.append(i)

    quick = Sender(timeout=0.3, allow_private=True)
    with RawServer(script) as server:
        with pytest.raises(DeliveryError, match="timeout"):
            quick.post(request(server.url))
        cut_at = len(sent)
    assert 0 < cut_at < len(answer)  # bytes were arriving, and the answer was not waited out


def test_a_huge_body_is_cut_and_the_connection_dropped(sender):
    big = b"x" * (MAX_BODY * 2)
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)
    with RawServer(serve_each(answer)) as server:
        bodies = [sender.post(request(server.url)).body for _ in range(2)]
    assert bodies == [big[:MAX_BODY]] * 2
    assert server.connections == 2


def test_an_endless_head_is_refused(sender):
    def script(server, conn, rfile):
        server.read(rfile)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Long: ")
        for _ in range(100):  # 100 KiB of one header value, never ended
            conn.sendall(b"a" * 1024)
        server.release.wait(5)

    with RawServer(script) as server:
        with pytest.raises(DeliveryError, match="head is too long"):
            sender.post(request(server.url))


def test_a_header_with_a_line_break_is_refused_before_sending(sender):
    with RawServer(serve_each(OK)) as server:
        with pytest.raises(ValueError):
            sender.post(request(server.url, **{"webhook-id": "a\r\nX-Injected: 1"}))
        assert sender.post(request(server.url)).status == 200
    assert len(server.bodies) == 1


def test_https_with_the_servers_certificate(tmp_path):
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    with RawServer(serve_each(OK), tls=server_tls) as server:
        url = f"https://localhost:{server.port}/hook"
        trusting = Sender(timeout=2, allow_private=True, tls=client_tls)
        assert [trusting.post(request(url)).body for _ in range(2)] == [b"ok", b"ok"]
        trusting.close()
        with pytest.raises(DeliveryError, match="TLS failed"):  # the system's CAs do not know this one
            Sender(timeout=2, allow_private=True).post(request(url))
    assert len(server.bodies) == 2 and server.connections == 2


def _self_signed(folder):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
