"""The client address rule of CONTRACT §1 (``AUTH_TRUSTED_PROXIES``)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth_service.observability.client_address import (
    DEFAULT_TRUSTED_PROXIES,
    TrustedProxies,
    client_address,
    parse_address,
)

DEFAULT = TrustedProxies(DEFAULT_TRUSTED_PROXIES)
GATEWAYS = TrustedProxies(["10.0.0.0/8", "2001:db8:1::/48"])


def h(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in pairs]


class TestUntrustedPeer:
    """From a peer that is not a trusted proxy, no header changes the address."""

    @pytest.mark.parametrize(
        "headers",
        [
            h(("X-Forwarded-For", "1.2.3.4")),
            h(("X-Real-IP", "1.2.3.4")),
            h(("Forwarded", "for=1.2.3.4")),
            h(("X-Forwarded-For", "1.2.3.4"), ("X-Real-IP", "5.6.7.8")),
            [],
        ],
    )
    def test_headers_ignored(self, headers: list[tuple[bytes, bytes]]) -> None:
        """The peer is the client, whatever it claims."""
        assert DEFAULT.client("203.0.113.9", headers) == "203.0.113.9"

    def test_non_ip_peer_is_returned_as_is(self) -> None:
        """A peer that is no address (a unix socket, a test transport) is never trusted."""
        assert DEFAULT.client("testclient", h(("X-Real-IP", "1.2.3.4"))) == "testclient"
        assert DEFAULT.client(None, h(("X-Real-IP", "1.2.3.4"))) is None


class TestTrustedPeer:
    """From a trusted proxy the forwarded headers are read, right to left."""

    def test_rightmost_untrusted_entry(self) -> None:
        """A client-made left part of X-Forwarded-For is skipped."""
        headers = h(("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.1.1.1"))
        assert GATEWAYS.client("10.0.0.2", headers) == "198.51.100.7"

    def test_several_headers_in_order(self) -> None:
        """Repeated X-Forwarded-For headers form one list."""
        headers = h(("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.7"))
        assert GATEWAYS.client("10.0.0.2", headers) == "198.51.100.7"

    def test_all_trusted_gives_leftmost(self) -> None:
        """When every hop is a trusted proxy, the far end of the chain is the client."""
        assert GATEWAYS.client("10.0.0.2", h(("X-Forwarded-For", "10.9.9.9, 10.1.1.1"))) == (
            "10.9.9.9"
        )

    def test_garbage_entry_stops_at_nearest_trusted_hop(self) -> None:
        """An entry that is not an address ends the walk at the hop that reported it."""
        assert GATEWAYS.client("10.0.0.2", h(("X-Forwarded-For", "1.2.3.4, unknown"))) == (
            "10.0.0.2"
        )
        assert GATEWAYS.client("10.0.0.2", h(("X-Forwarded-For", "junk, 10.3.3.3"))) == ("10.3.3.3")

    def test_xff_beats_x_real_ip(self) -> None:
        """X-Forwarded-For (appended by the proxy) wins over X-Real-IP."""
        headers = h(("X-Real-IP", "5.5.5.5"), ("X-Forwarded-For", "198.51.100.7"))
        assert DEFAULT.client("127.0.0.1", headers) == "198.51.100.7"

    def test_x_real_ip_alone(self) -> None:
        """X-Real-IP from a trusted peer is the client when nothing else says."""
        assert DEFAULT.client("127.0.0.1", h(("X-Real-IP", " 198.51.100.7 "))) == "198.51.100.7"
        assert DEFAULT.client("127.0.0.1", h(("X-Real-IP", "nonsense"))) == "127.0.0.1"

    def test_forwarded_header(self) -> None:
        """RFC 7239 ``for=`` values, quoted IPv6 with a port included."""
        headers = h(("Forwarded", 'for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https'))
        assert DEFAULT.client("::1", headers) == "2001:db8:cafe::17"
        assert DEFAULT.client("::1", h(("Forwarded", "proto=https"))) == "::1"

    def test_ipv4_mapped_peer_and_ports(self) -> None:
        """IPv4-mapped IPv6 peers are IPv4; ``v4:port`` entries lose their port."""
        assert DEFAULT.client("::ffff:127.0.0.1", h(("X-Forwarded-For", "198.51.100.7:5555"))) == (
            "198.51.100.7"
        )

    def test_no_headers_gives_peer(self) -> None:
        """A trusted peer that forwards nothing is itself the client."""
        assert DEFAULT.client("127.0.0.1", []) == "127.0.0.1"


def test_scope_helper_uses_the_peer_and_caches() -> None:
    """`client_address` reads ``scope["client"]`` and caches in the scope state."""
    scope = {"client": ("127.0.0.1", 5), "headers": h(("X-Forwarded-For", "198.51.100.7"))}
    assert client_address(scope, DEFAULT_TRUSTED_PROXIES) == "198.51.100.7"
    assert scope["state"] == {"client_address": "198.51.100.7"}
    other = {"client": ("192.0.2.1", 5), "headers": h(("X-Forwarded-For", "198.51.100.7"))}
    assert client_address(other, DEFAULT_TRUSTED_PROXIES) == "192.0.2.1"


def test_invalid_network_is_refused() -> None:
    """A bad ``AUTH_TRUSTED_PROXIES`` entry is an error, not silently ignored."""
    with pytest.raises(ValueError):
        TrustedProxies(["10.0.0.0/33"])


def test_parse_address_forms() -> None:
    """Bare, quoted, bracketed and ported forms; anything else is None."""
    assert parse_address("[::1]:80") == ipaddress.ip_address("::1")
    assert parse_address('"198.51.100.7"') == ipaddress.ip_address("198.51.100.7")
    for bad in ("", "unknown", "_hidden", "[::1", "1.2.3.4.5", "x" * 100):
        assert parse_address(bad) is None


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
anything = st.one_of(ipv4, ipv6, st.text(max_size=20))


@given(
    peer=st.ip_addresses(v=4).filter(lambda a: not a.is_loopback).map(str),
    forged=st.lists(st.sampled_from(["x-forwarded-for", "x-real-ip", "forwarded"]), max_size=3),
    values=st.lists(anything, min_size=3, max_size=3),
)
def test_property_untrusted_peer_always_wins(
    peer: str, forged: list[str], values: list[str]
) -> None:
    """Whatever headers an untrusted peer sends, the address is the peer."""
    headers = [(n.encode(), v.encode("utf-8")) for n, v in zip(forged, values, strict=False)]
    assert DEFAULT.client(peer, headers) == str(ipaddress.ip_address(peer))


@given(
    client=st.ip_addresses(v=4).filter(lambda a: a not in ipaddress.ip_network("10.0.0.0/8")),
    prefix=st.lists(anything, max_size=5),
    proxies=st.lists(st.ip_addresses(network="10.0.0.0/8").map(str), max_size=4),
)
def test_property_client_made_prefix_never_matters(
    client: ipaddress.IPv4Address, prefix: list[str], proxies: list[str]
) -> None:
    """Behind trusted proxies, what the client put left of its own address is never chosen."""
    chain = ", ".join([*(p.replace(",", "") for p in prefix), str(client), *proxies])
    headers = [(b"x-forwarded-for", chain.encode("utf-8"))]
    assert GATEWAYS.client("10.0.0.1", headers) == str(client)
