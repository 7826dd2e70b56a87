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

import ipaddress
import socket

from newswatch.errors import DeliveryError, UnsafeEndpoint

# Metadata services of the clouds users of this tool run on (AWS/GCP/Azure/OpenStack, AWS IPv6,
# Alibaba Cloud, Oracle Cloud); 100.100.100.200 is Alibaba's, common with Chinese hosting.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192", "169.254.170.2",
))

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_address(address: str | Address, *, allow_private: bool) -> Address:
    """The address if a delivery may connect to it; UnsafeEndpoint (naming the kind, not the URL) if not."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip in METADATA_ADDRESSES:
        raise UnsafeEndpoint(f"{ip} is a cloud metadata address; webhooks never connect there")
    if ip.is_multicast or ip.is_unspecified:
        raise UnsafeEndpoint(f"{ip} is not a unicast address")
    if allow_private or ip.is_global:
        return ip
    kind = ("loopback" if ip.is_loopback else "link-local" if ip.is_link_local
            else "private" if ip.is_private else "non-global")
    raise UnsafeEndpoint(f"webhook host resolves to the {kind} address {ip}; "
                         "set NEWSWATCH_WEBHOOK_ALLOW_PRIVATE=1 (or allow_private) to allow it")


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
