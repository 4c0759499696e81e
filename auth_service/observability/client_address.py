"""The client address of a request: one rule for every audit event and every limit.

CONTRACT §1 ``AUTH_TRUSTED_PROXIES``. A client can send ``X-Forwarded-For``,
``Forwarded`` and ``X-Real-IP`` itself, so they are believed only when the TCP
peer (``scope["client"]``) is a trusted proxy:

1. The peer is not a trusted proxy (or not an IP address at all): the peer is
   the client; the headers are ignored.
2. The peer is trusted and ``X-Forwarded-For`` is present (every such header,
   in order): walk its entries from the right, skipping trusted proxies; the
   first entry that is not one is the client. When every entry is a trusted
   proxy the left-most is. An entry that is not an address (``unknown``,
   garbage) ends the walk: the client is the nearest hop we can vouch for
   (the trusted entry to its right, or the peer).
3. Otherwise the ``for=`` values of ``Forwarded`` (RFC 7239), walked the same way.
4. Otherwise ``X-Real-IP`` when it is an address.
5. Otherwise the peer.

For forward-auth the gateway is the peer and the original client arrives in
the forwarded headers: the same rule applies unchanged. Addresses come back
normalised (``str(ipaddress.ip_address(...))``, IPv4-mapped IPv6 as IPv4).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ("DEFAULT_TRUSTED_PROXIES", "TrustedProxies", "client_address", "parse_address")

DEFAULT_TRUSTED_PROXIES = ("127.0.0.0/8", "::1")
"""The default of ``AUTH_TRUSTED_PROXIES``: a gateway on the same host."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_MAX_ENTRY = 64
_MAX_HOPS = 32
"""Entries examined from the right; a longer chain is cut (its far end is client-made)."""


def parse_address(text: str) -> IPAddress | None:
    """One address as proxies write it: bare, quoted, ``[v6]:port`` or ``v4:port``."""
    text = text.strip().strip('"').strip()
    if not text or len(text) > _MAX_ENTRY:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The parsed ``AUTH_TRUSTED_PROXIES``: addresses and networks whose headers are believed.

    Raises:
        ValueError: an entry is not an address or a CIDR network.
    """

    def __init__(self, networks: Iterable[str]) -> None:
        parsed = [ipaddress.ip_network(n.strip(), strict=False) for n in networks if n.strip()]
        self.v4 = tuple(n for n in parsed if isinstance(n, ipaddress.IPv4Network))
        self.v6 = tuple(n for n in parsed if isinstance(n, ipaddress.IPv6Network))

    def __contains__(self, address: object) -> bool:
        if isinstance(address, ipaddress.IPv4Address):
            return any(address in n for n in self.v4)
        if isinstance(address, ipaddress.IPv6Address):
            return any(address in n for n in self.v6)
        return False

    def client(self, peer: str | None, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """The client address of a request from ``peer`` carrying ``headers`` (the rule above)."""
        peer_address = parse_address(peer) if peer else None
        if peer_address is None:
            return peer or None
        if peer_address not in self:
            return str(peer_address)
        xff: list[bytes] = []
        forwarded: list[bytes] = []
        real_ip: bytes | None = None
        for name, value in headers:
            if name == b"x-forwarded-for":
                xff.append(value)
            elif name == b"forwarded":
                forwarded.append(value)
            elif name == b"x-real-ip" and real_ip is None:
                real_ip = value
        if xff:
            return str(self._walk(_split(b",".join(xff)), peer_address))
        if forwarded:
            return str(self._walk(_forwarded_for(b",".join(forwarded)), peer_address))
        if real_ip is not None:
            address = parse_address(real_ip.decode("latin-1"))
            if address is not None:
                return str(address)
        return str(peer_address)

    def _walk(self, entries: Sequence[str], peer: IPAddress) -> IPAddress:
        nearest = peer
        for entry in reversed(entries[-_MAX_HOPS:]):
            address = parse_address(entry)
            if address is None:
                return nearest
            if address not in self:
                return address
            nearest = address
        return nearest


def _split(value: bytes) -> list[str]:
    return [p for p in value.decode("latin-1").split(",") if p.strip()]


def _forwarded_for(value: bytes) -> list[str]:
    """The ``for=`` of each element of a ``Forwarded`` header (``""`` where there is none)."""
    found: list[str] = []
    for element in value.decode("latin-1").split(","):
        if not element.strip():
            continue
        node = ""
        for pair in element.split(";"):
            key, sep, val = pair.strip().partition("=")
            if sep and key.strip().lower() == "for":
                node = val
        found.append(node)
    return found


@functools.lru_cache(maxsize=8)
def _trusted(networks: tuple[str, ...]) -> TrustedProxies:
    return TrustedProxies(networks)


def client_address(scope: Any, trusted_proxies: tuple[str, ...]) -> str | None:
    """The client address of an ASGI scope under ``trusted_proxies`` (``settings.trusted_proxies``).

    Computed once per scope and cached in its state.
    """
    state = scope.setdefault("state", {})
    cached: str | None = state.get("client_address")
    if cached is None:
        client = scope.get("client")
        peer = str(client[0]) if client else None
        cached = _trusted(trusted_proxies).client(peer, scope.get("headers", ()))
        if cached is not None:
            state["client_address"] = cached
    return cached
