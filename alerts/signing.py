"""Standard Webhooks v1 signatures: base64 HMAC-SHA256 over `id.timestamp.body` with a `whsec_` secret.

A secret is `whsec_` followed by the base64 of the key (the form the spec and its libraries use). During
rotation several secrets are configured; each signs the message and the signatures are sent space-separated
in one `webhook-signature` header, so a receiver holding either secret accepts the delivery.
"""

from __future__ import annotations

import hashlib
from binascii import b2a_base64  # base64.b64encode without its Python wrapper

# checked once at load (newswatch/webhook_secrets.py); re-exported here for the worker and tests
from newswatch.webhook_secrets import SECRET_PREFIX, decode_secret  # noqa: F401


class Signer:
    """Signs messages with one or more keys; built once per endpoint so secrets are parsed at start."""

    def __init__(self, secrets: tuple[str, ...], setting: str = "NEWSWATCH_WEBHOOK_SECRET"):
        # per secret, the HMAC's inner and outer hashes with the key already absorbed (RFC 2104), copied
        # for each message: the key is padded and hashed once
        self._macs = tuple(_keyed(decode_secret(s, setting)) for s in secrets)

    def __bool__(self) -> bool:
        return bool(self._macs)

    def __repr__(self) -> str:  # keys must never reach a log line
        return f"Signer({len(self._macs)} keys)"

    def signature(self, msg_id: str, timestamp: int, body: bytes) -> str:
        """The `webhook-signature` header value: `v1,<base64>` per key, space-separated."""
        message = f"{msg_id}.{timestamp}.".encode() + body
        if len(self._macs) == 1:  # the usual case, without a generator
            return "v1," + b2a_base64(_digest(*self._macs[0], message), newline=False).decode()
        return " ".join("v1," + b2a_base64(_digest(inner, outer, message), newline=False).decode()
                        for inner, outer in self._macs)


def _keyed(key: bytes) -> tuple:
    """HMAC-SHA256 (RFC 2104) as two hashlib objects: sha256(key ^ ipad) and sha256(key ^ opad). The hmac
    module's object wraps the same in Python methods (copy, update, digest), a few microseconds a message."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return (hashlib.sha256(bytes(b ^ 0x36 for b in key)), hashlib.sha256(bytes(b ^ 0x5C for b in key)))


def _digest(inner, outer, message: bytes) -> bytes:
    # Fed in pieces below hashlib's 2,048-byte threshold, the hash keeps the GIL: it takes a few
    # microseconds, and a thread that lets the GIL go for them waits for it again behind the other
    # delivery threads (a hand-over per item, measurable in the worker's context switches per delivery).
    mac = inner.copy()
    for start in range(0, len(message), _PIECE):
        mac.update(message[start:start + _PIECE])
    mac_outer = outer.copy()
    mac_outer.update(mac.digest())
    return mac_outer.digest()


_PIECE = 2047
_BLOCK = 64  # SHA-256's block size in bytes
