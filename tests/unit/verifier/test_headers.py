"""The identity-header codec (CONTRACT §4): items of comma-separated headers percent-encoded
where they hold ``,``, ``%``, whitespace, control or non-ASCII characters, and nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth_service.tokens.identity import header_value, identity_headers
from auth_service.verifier import Claims, decode_items, read_identity
from auth_service.verifier.headers import decode_item, encode_item, encode_value

ROLE_NAMES = st.text(min_size=1, max_size=40)
"""Arbitrary role names: any code points, including ``,``, ``%``, CR/LF, spaces, emoji."""


@pytest.mark.parametrize(
    ("item", "encoded"),
    [
        ("auth-admin,evil", "auth-admin%2Cevil"),
        ("100%", "100%25"),
        ("a b", "a%20b"),
        ("tab\there", "tab%09here"),
        ("cr\r\nlf", "cr%0D%0Alf"),
        ("del\x7f", "del%7F"),
        ("nul\x00", "nul%00"),
        ("jürgen", "j%C3%BCrgen"),
        ("nbsp\u00a0", "nbsp%C2%A0"),
        ("🔑", "%F0%9F%94%91"),
        # Everything else stays as it is, so ordinary names read unchanged.
        ("orders-writer", "orders-writer"),
        ("a;b/c:d=e?f&g+h*i'j\"k(l)m[n]o{p}q|r\\s^t`u~v!w#x$y@z<>._", None),
    ],
)
def test_item_encoding_touches_exactly_the_listed_characters(
    item: str, encoded: str | None
) -> None:
    expected = item if encoded is None else encoded
    assert encode_item(item) == expected
    assert decode_item(expected) == item


def test_a_role_with_a_comma_stays_one_role() -> None:
    """The reproduction of issue 12 item 5: ``auth-admin,evil`` is not two roles."""
    roles = frozenset({"auth-admin,evil", "user"})
    value = header_value(roles)
    assert value == "auth-admin%2Cevil,user"
    assert "auth-admin" not in value.split(",")
    assert decode_items(value) == ["auth-admin,evil", "user"]


@given(st.lists(ROLE_NAMES, max_size=8))
def test_round_trip_encode_split_decode(roles: list[str]) -> None:
    """encode → split on ``,`` → decode gives the original (sorted) list, for any names;
    the header is printable ASCII without spaces, so it cannot inject or be re-split."""
    value = header_value(roles)
    assert value.isascii() and value.isprintable() and " " not in value
    assert decode_items(value) == sorted(roles)
    if roles:  # the plain split a downstream does: one item per role, each decoded
        assert [decode_item(item) for item in value.split(",")] == sorted(roles)


@given(st.frozensets(ROLE_NAMES, max_size=8), st.lists(ROLE_NAMES, max_size=4))
def test_round_trip_through_the_identity_headers(roles: frozenset[str], groups: list[str]) -> None:
    """The headers the service sends (realm roles, a list claim header) decode back to the
    claims through the verifier's reader."""
    raw: dict[str, object] = {
        "sub": "u-1",
        "preferred_username": "alice",
        "exp": 2_000_000_000,
        "realm_access": {"roles": sorted(roles)},
        "groups": groups,
    }
    claims = Claims.from_raw(raw)
    headers = identity_headers(raw, claims.realm_roles, {"groups": "X-Auth-Groups"}, raw)
    found = read_identity(headers)
    assert found.roles == tuple(sorted(roles))
    if groups:
        assert found.attributes["x-auth-groups"] == tuple(sorted(groups))
    assert found.subject == "u-1" and found.username == "alice"


@given(st.text(max_size=40))
def test_single_values_decode_as_one_item(text: str) -> None:
    """A single value (user, e-mail, scalar claim) also encodes ``,``: it is always one item."""
    value = encode_value(text)
    assert value.isascii() and value.isprintable()
    assert decode_items(value) == ([text] if text else [])


def test_single_values_keep_spaces_and_encode_commas() -> None:
    assert encode_value("Jane Doe") == "Jane Doe"
    assert encode_value("Doe, Jane") == "Doe%2C Jane"
    assert encode_value("t\r\nX-Auth-User: admin") == "t%0D%0AX-Auth-User: admin"


@given(st.text(max_size=40))
def test_single_values_survive_header_whitespace_trimming(text: str) -> None:
    """HTTP drops spaces around a header value, so ``"t-001 "`` must not arrive as ``t-001``:
    a claim differing only by edge spaces would read as another tenant downstream."""
    value = encode_value(text)
    assert value == value.strip(" \t")
    found = read_identity([(b"x-auth-tenant", f" {value} ".encode())])
    assert found.attributes.get("x-auth-tenant") == ((text,) if text else ())


@pytest.mark.parametrize("value", ["%", "a%2", "a%zz", "%C3", "%FF%FE"])
def test_values_not_written_by_the_service_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        decode_items(value)


def test_reader_refuses_duplicates_and_multiple_single_values() -> None:
    with pytest.raises(ValueError, match="more than once"):
        read_identity([(b"x-auth-roles", b"a"), (b"X-Auth-Roles", b"b")])
    with pytest.raises(ValueError, match="more than one value"):
        read_identity({"X-Auth-User": "alice,bob"}.items())


def test_reader_decodes_asgi_headers_and_skips_the_assertion() -> None:
    found = read_identity(
        [
            (b"x-auth-subject", b"u-1"),
            (b"x-auth-user", b"j%C3%BCrgen"),
            (b"x-auth-roles", b"auth-admin%2Cevil,user"),
            (b"x-auth-mfa", b"totp"),
            (b"x-auth-tenant", b"t-001"),
            (b"x-auth-assertion", b"a.b.c"),
            (b"accept", b"*/*"),
        ]
    )
    assert found.username == "jürgen"
    assert found.roles == ("auth-admin,evil", "user")
    assert found.mfa == "totp" and found.email is None
    assert found.attributes == {"x-auth-tenant": ("t-001",)}
