"""Identity headers: rendered values are remembered per value, never across types."""

from __future__ import annotations

from typing import Any

from auth_service.tokens import identity
from auth_service.tokens.identity import identity_headers
from auth_service.verifier import Claims

HEADERS = {"flag": "X-Auth-Flag", "tenant_id": "X-Auth-Tenant", "org.site": "X-Auth-Site"}


def claims(**extra: Any) -> Claims:
    raw = {
        "sub": "u-1",
        "preferred_username": "alice",
        "email": "alice@example.com",
        "exp": 2_000_000_000,
        "realm_access": {"roles": ["b-role", "a-role"]},
        **extra,
    }
    return Claims.from_raw(raw)


def rendered(c: Claims, attributes: dict[str, object] | None = None) -> dict[bytes, bytes]:
    return dict(identity_headers(c, HEADERS, attributes))


def test_equal_keys_of_different_types_render_differently() -> None:
    # True == 1 == 1.0 as dict keys: a shared memo must not hand one the other's text.
    assert rendered(claims(flag=True))[b"x-auth-flag"] == b"true"
    assert rendered(claims(flag=1))[b"x-auth-flag"] == b"1"
    assert rendered(claims(flag=1.0))[b"x-auth-flag"] == b"1.0"
    assert rendered(claims(flag=True))[b"x-auth-flag"] == b"true"


def test_roles_sorted_and_attributes_from_either_source() -> None:
    c = claims(tenant_id="t-001", org={"site": "berlin"})
    from_claims = rendered(c)
    from_attributes = rendered(c, c.attributes({p: p for p in HEADERS}))
    assert from_claims == from_attributes
    assert from_claims[b"x-auth-roles"] == b"a-role,b-role"
    assert from_claims[b"x-auth-site"] == b"berlin"
    assert b"x-auth-flag" not in from_claims


def test_remembered_values_are_escaped_and_bounded() -> None:
    hostile = "evil\r\nX-Injected: 1"
    for _ in range(2):  # the second answer comes from the memo
        assert rendered(claims(tenant_id=hostile))[b"x-auth-tenant"] == b"evil%0D%0AX-Injected: 1"
    long_value = "x" * 5000
    assert rendered(claims(tenant_id=long_value))[b"x-auth-tenant"] == long_value.encode()
    assert long_value not in identity._rendered  # long strings are not kept
    for i in range(identity._RENDERED_MAX + 10):
        rendered(claims(tenant_id=f"t-{i}"))
    assert len(identity._rendered) <= identity._RENDERED_MAX
