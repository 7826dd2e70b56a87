"""Which addresses a webhook may connect to.

A webhook URL comes from configuration, but its host name is resolved at delivery time, and DNS can point
anywhere: at the loopback interface, a private network, or a cloud metadata service that hands out
credentials. So the check runs on the resolved addresses, and the delivery connects to exactly the address
that was checked (see `delivery`), never resolving the name a second time.

Only globally routable unicast addresses pass, unless the endpoint allows private ones (`allow_private`,
for local receivers and tests). Cloud metadata addresses are refused even then: no local receiver lives
there, and reaching one is the usual goal of a server-side request forgery.
"""

from __future__ import annotations

import socket

# The pure check lives in the base layer so `newswatch run` refuses the same addresses at start.
from newswatch.addresses import check_address  # noqa: F401 - re-exported: the worker imports it from here
from newswatch.errors import DeliveryError


def resolve(host: str, port: int, *, allow_private: bool) -> list[tuple[int, str]]:
    """Resolve once and check every address; (family, address) pairs to connect to, in resolver order.

    One unsafe address refuses the whole name: a name that mixes public and private answers is exactly
    what a DNS-rebinding attack looks like.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeliveryError(f"cannot resolve the webhook host ({exc.strerror})") from None
    out: list[tuple[int, str]] = []
    for family, _, _, _, sockaddr in infos:
        address = sockaddr[0]
        check_address(address.split("%", 1)[0], allow_private=allow_private)
        if (family, address) not in out:
            out.append((family, address))
    return out
