"""The visitor's address: the connection peer, or what a trusted proxy says in ``X-Forwarded-For``.

Forwarded headers are trusted only when the connection peer is a configured proxy, and then the right-most
address that is not one of our proxies is the client: everything left of it was written by someone we do
not trust. Used by the visitor path and the dashboard's rate limiter alike.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from ._types import Scope

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


def parse_ip(value: str) -> IPAddress | None:
    """An address from a header or socket value: plain, ``v4:port``, ``[v6]`` or ``[v6]:port``.

    IPv4-mapped IPv6 (``::ffff:1.2.3.4``) becomes IPv4 so proxies and truncation see one form.
    """
    text = value.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port; bare IPv6 has at least two colons
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IPAddress, trusted_proxies: Sequence[Network]) -> bool:
    return any(address in network for network in trusted_proxies)


def client_ip(scope: Scope, trusted_proxies: Sequence[Network]) -> str | None:
    """The visitor's address: the connection peer, or, only when the peer is a trusted proxy, the
    right-most address of ``X-Forwarded-For`` that is not a trusted proxy.

    A forwarded value that cannot be parsed stops the walk and the peer is used: we never guess.
    """
    client = scope.get("client")
    peer = parse_ip(str(client[0])) if client else None
    if peer is None:
        return None
    if not trusted_proxies or not _is_trusted(peer, trusted_proxies):
        return str(peer)
    forwarded = [value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"x-forwarded-for"]
    hops = [hop for hop in ",".join(forwarded).split(",") if hop.strip()]
    if not hops:
        return str(peer)
    address: IPAddress | None = None
    for hop in reversed(hops):
        address = parse_ip(hop)
        if address is None:
            return str(peer)
        if not _is_trusted(address, trusted_proxies):
            return str(address)
    # every hop is one of our proxies: the left-most is the closest we know to the client
    return str(address)
