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
from urllib.parse import urlsplit

from newswatch.errors import UnsafeEndpoint

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


def check_endpoint(endpoint) -> None:
    """Refuse at start an endpoint whose host is a literal address no delivery may connect to. A host name
    passes here: what it resolves to is checked at each connection."""
    host = urlsplit(endpoint.url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return  # a name, not an address
    check_address(host, allow_private=endpoint.allow_private)


def check_endpoints(endpoints) -> None:
    """`check_endpoint` for each configured endpoint; UnsafeEndpoint for the first refused one."""
    for endpoint in endpoints:
        check_endpoint(endpoint)
