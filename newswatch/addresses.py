"""Which addresses a webhook may connect to: the pure check, shared by the alert worker and `newswatch run`.

A webhook URL comes from configuration, but its host name is resolved at delivery time, and DNS can point
anywhere: at the loopback interface, a private network, or a cloud metadata service that hands out
credentials. So the alert worker runs this check on the resolved addresses at each connection
(alerts/safety.py), and both commands that deliver run it at start on an endpoint whose host is a literal
address (`check_endpoints`), so a URL that can never be delivered to is one clear error at start (exit 2)
instead of a service that runs and never delivers.

Only globally routable unicast addresses pass, unless the endpoint allows private ones (`allow_private`,
for local receivers and tests). Cloud metadata addresses are refused even then: no local receiver lives
there, and reaching one is the usual goal of a server-side request forgery.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from newswatch.errors import UnsafeEndpoint
from newswatch.webhook_secrets import setting_name

# Metadata services of the clouds users of this tool run on (AWS/GCP/Azure/OpenStack, AWS IPv6, GCP IPv6,
# Alibaba Cloud, Oracle Cloud, AWS ECS task credentials, EKS Pod Identity); 100.100.100.200 is Alibaba's,
# common with Chinese hosting.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "fd20:ce::254", "100.100.100.200", "192.0.0.192", "169.254.170.2",
    "169.254.170.23",
))

# IPv6 forms that carry an IPv4 address in their last 32 bits, which is where the packets end up: the
# well-known NAT64 prefix (RFC 6052) and the deprecated IPv4-compatible form (RFC 4291; :: and ::1 are
# excluded below, they are IPv6's own). Python judges both as global whatever they carry.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# Local-use NAT64 (RFC 8215): the IPv4 address sits where the operator chose; not globally reachable.
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def embedded_ipv4(ip: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address delivers to (mapped, NAT64, IPv4-compatible, 6to4), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64 or (ip in IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def check_address(address: str | Address, *, allow_private: bool) -> Address:
    """The address if a delivery may connect to it; UnsafeEndpoint (naming the kind, not the URL) if not.

    An IPv6 address that carries an IPv4 one is judged by the IPv4 address (and named with both)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    inner = embedded_ipv4(ip)
    if inner is not None and ip.ipv4_mapped is not None:
        ip, inner = inner, None  # ::ffff:127.0.0.1 is 127.0.0.1
    judged = inner or ip
    shown = f"{judged} (inside {ip})" if inner is not None else str(ip)
    if ip in METADATA_ADDRESSES or judged in METADATA_ADDRESSES:
        raise UnsafeEndpoint(f"{shown} is a cloud metadata address; webhooks never connect there")
    if judged.is_multicast or judged.is_unspecified or ip.is_multicast or ip.is_unspecified:
        raise UnsafeEndpoint(f"{shown} is not a unicast address")
    if allow_private or (judged.is_global and ip not in NAT64_LOCAL):
        return ip
    kind = ("loopback" if judged.is_loopback else "link-local" if judged.is_link_local
            else "private" if judged.is_private else "non-global")
    raise UnsafeEndpoint(f"webhook host resolves to the {kind} address {shown}; "
                         "set NEWSWATCH_WEBHOOK_ALLOW_PRIVATE=1 (or allow_private) to allow it")


def literal_address(host: str) -> Address | None:
    """The address a host names without DNS: an IP literal, or one of the IPv4 forms the resolver's
    inet_aton reads as a number (`127.1`, `0x7f000001`, `2130706433`, `0177.0.0.1`); None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not host or not all(c.isalnum() or c == "." for c in host) or not host.rstrip(".").replace(".", "").isalnum():
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None  # a name, not an address


def check_endpoint(endpoint) -> None:
    """Refuse at start an endpoint whose host is a literal address no delivery may connect to, naming its
    setting. A host name passes here: what it resolves to is checked at each connection."""
    address = literal_address(urlsplit(endpoint.url).hostname or "")
    if address is None:
        return
    try:
        check_address(address, allow_private=endpoint.allow_private)
    except UnsafeEndpoint as exc:
        raise UnsafeEndpoint(f"{setting_name(endpoint, 'url')}: {exc}") from None


def check_endpoints(endpoints) -> None:
    """`check_endpoint` for each configured endpoint; UnsafeEndpoint for the first refused one."""
    for endpoint in endpoints:
        check_endpoint(endpoint)
