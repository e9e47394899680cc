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


def peer_is_trusted(scope: Scope, trusted_proxies: Sequence[Network]) -> bool:
    """Whether the connection peer itself is one of the trusted proxies."""
    client = scope.get("client")
    peer = parse_ip(str(client[0])) if client else None
    return peer is not None and _is_trusted(peer, trusted_proxies)


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


_SCHEMES = frozenset({"http", "https"})
_WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss"}


def _last_forwarded_proto(value: str) -> str | None:
    """The ``proto=`` of the right-most element of an RFC 7239 ``Forwarded`` header (the closest proxy's)."""
    for pair in value.rsplit(",", 1)[-1].split(";"):
        name, _, param = pair.partition("=")
        if name.strip().lower() == "proto":
            return param.strip().strip('"').lower()
    return None


def _scheme_from_headers(scope: Scope) -> str | None:
    """The right-most ``X-Forwarded-Proto`` value, else ``Forwarded``'s ``proto=``: the closest proxy's word."""
    forwarded: str | None = None
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-proto":
            proto = value.decode("latin-1").rsplit(",", 1)[-1].strip().lower()
            return proto if proto in _SCHEMES else None
        if name == b"forwarded":
            forwarded = value.decode("latin-1")
    if forwarded is not None:
        proto = _last_forwarded_proto(forwarded)
        return proto if proto in _SCHEMES else None
    return None


class ForwardedScheme:
    """Sets ``scope["scheme"]`` to what a trusted TLS terminator saw, so the Origin check, ``Secure`` cookies
    and the site itself see ``https`` behind it (a WebSocket scope gets ``wss``).

    Only when the connection peer is one of ``trusted_proxies``; anything but http/https is ignored. Whether a
    peer is trusted is remembered (a gateway behind proxies sees few peers), so a request costs a dict lookup.
    """

    _MAX_PEERS = 4096

    def __init__(self, trusted_proxies: Sequence[Network]) -> None:
        self._trusted_proxies = tuple(trusted_proxies)
        self._peers: dict[str, bool] = {}

    def is_trusted_peer(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client:
            return False
        host = str(client[0])
        trusted = self._peers.get(host)
        if trusted is None:
            address = parse_ip(host)
            trusted = address is not None and _is_trusted(address, self._trusted_proxies)
            if len(self._peers) < self._MAX_PEERS:
                self._peers[host] = trusted
        return trusted

    def __call__(self, scope: Scope) -> None:
        if not self.is_trusted_peer(scope):
            return
        scheme = _scheme_from_headers(scope)
        if scheme is not None:
            scope["scheme"] = _WEBSOCKET_SCHEMES[scheme] if scope["type"] == "websocket" else scheme


def covers_every_address(networks: Sequence[Network]) -> bool:
    """True when the networks together hold every IPv4 or every IPv6 address (``0.0.0.0/0``, ``::/0``, or
    halves that add up): trusting them would let any visitor forge its address and scheme."""
    v4 = [n for n in networks if isinstance(n, IPv4Network)]
    v6 = [n for n in networks if isinstance(n, IPv6Network)]
    whole_v4 = any(n.prefixlen == 0 for n in ipaddress.collapse_addresses(v4))
    return whole_v4 or any(n.prefixlen == 0 for n in ipaddress.collapse_addresses(v6))
