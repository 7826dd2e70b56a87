"""Standard Webhooks v1 signatures: base64 HMAC-SHA256 over `id.timestamp.body` with a `whsec_` secret.

A secret is `whsec_` followed by the base64 of the key (the form the spec and its libraries use). During
rotation several secrets are configured; each signs the message and the signatures are sent space-separated
in one `webhook-signature` header, so a receiver holding either secret accepts the delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

# checked once at load (newswatch/webhook_secrets.py); re-exported here for the worker and tests
from newswatch.webhook_secrets import SECRET_PREFIX, decode_secret  # noqa: F401


class Signer:
    """Signs messages with one or more keys; built once per endpoint so secrets are parsed at start."""

    def __init__(self, secrets: tuple[str, ...], setting: str = "NEWSWATCH_WEBHOOK_SECRET"):
        # one keyed HMAC per secret, copied for each message (the key is padded and hashed once)
        self._macs = tuple(hmac.new(decode_secret(s, setting), digestmod=hashlib.sha256) for s in secrets)

    def __bool__(self) -> bool:
        return bool(self._macs)

    def __repr__(self) -> str:  # keys must never reach a log line
        return f"Signer({len(self._macs)} keys)"

    def signature(self, msg_id: str, timestamp: int, body: bytes) -> str:
        """The `webhook-signature` header value: `v1,<base64>` per key, space-separated."""
        message = f"{msg_id}.{timestamp}.".encode() + body
        return " ".join("v1," + base64.b64encode(_digest(mac, message)).decode() for mac in self._macs)


def _digest(keyed, message: bytes) -> bytes:
    # Fed in pieces below hashlib's 2,048-byte threshold, the hash keeps the GIL: it takes a few
    # microseconds, and a thread that lets the GIL go for them waits for it again behind the other
    # delivery threads (a hand-over per item, measurable in the worker's context switches per delivery).
    mac = keyed.copy()
    for start in range(0, len(message), _PIECE):
        mac.update(message[start:start + _PIECE])
    return mac.digest()


_PIECE = 2047
