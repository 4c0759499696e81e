"""The token cache's entry: headers rendered once per value, never across types; untracked."""

from __future__ import annotations

import gc
from typing import Any

import msgspec

from auth_service.tokens import identity
from auth_service.tokens.identity import Authenticated
from auth_service.verifier import MISSING

HEADERS = {"flag": "X-Auth-Flag", "tenant_id": "X-Auth-Tenant", "org.site": "X-Auth-Site"}


def claims(**extra: Any) -> Authenticated:
    raw = {
        "sub": "u-1",
        "preferred_username": "alice",
        "email": "alice@example.com",
        "exp": 2_000_000_000,
        "realm_access": {"roles": ["b-role", "a-role"]},
        **extra,
    }
    return Authenticated.build(
        raw,
        key=b"k",
        payload=msgspec.json.encode(raw),
        claim_headers=HEADERS,
        claim_paths=("org.site", "groups", "flag"),
    )


def rendered(c: Authenticated) -> dict[bytes, bytes]:
    return dict(c.headers)


def test_equal_keys_of_different_types_render_differently() -> None:
    # True == 1 == 1.0 as dict keys: a shared memo must not hand one the other's text.
    assert rendered(claims(flag=True))[b"x-auth-flag"] == b"true"
    assert rendered(claims(flag=1))[b"x-auth-flag"] == b"1"
    assert rendered(claims(flag=1.0))[b"x-auth-flag"] == b"1.0"
    assert rendered(claims(flag=True))[b"x-auth-flag"] == b"true"


def test_roles_sorted_and_attributes_rendered() -> None:
    c = claims(tenant_id="t-001", org={"site": "berlin"})
    headers = rendered(c)
    assert headers[b"x-auth-roles"] == b"a-role,b-role"
    assert headers[b"x-auth-site"] == b"berlin"
    assert b"x-auth-flag" not in headers
    assert dict(c.attributes) == {"tenant_id": "t-001", "org.site": "berlin"}


def test_claims_known_at_verification_and_the_rest_from_the_payload() -> None:
    c = claims(org={"site": "berlin"}, groups=["/a", "/b"], extra={"deep": [1, 2]})
    assert c.claim("org.site") == "berlin"
    assert c.claim("groups") == ("/a", "/b")  # a list claim, as a tuple
    assert c.claim("extra.deep") == [1, 2]  # not named by the policy: decoded on demand
    assert c.claim("nope") is MISSING
    assert claims().claim("org.site") is MISSING  # looked up when verified: absent
    assert c.claims.username == "alice"
    assert c.claims.realm_roles == c.realm_roles == {"a-role", "b-role"}


def test_a_cached_token_is_never_walked_by_the_garbage_collector() -> None:
    c = claims(tenant_id="t-001", org={"site": "berlin"}, groups=["/a"])
    for _ in range(3):  # a tuple is untracked once the tuples it holds are: one level a pass
        gc.collect()
    assert not gc.is_tracked(c)
    # Its tuples hold only strings, bytes and tuples of those: the collector untracks them.
    assert not any(gc.is_tracked(t) for t in (c.headers, c.attributes, c.known))
    assert not any(gc.is_tracked(pair) for pair in c.headers)


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


def test_shared_values_never_cross_types() -> None:
    """``1 == True``: a token with ``flag: 1`` must not get the tuple of one with ``flag: true``
    (CONTRACT §3 compares claim literals by type), neither for the policy nor downstream."""
    first = claims(flag=True)
    second = claims(flag=1)
    assert first.claim("flag") is True
    assert second.claim("flag") == 1 and type(second.claim("flag")) is int
    assert dict(second.attributes)["flag"] == 1 and type(dict(second.attributes)["flag"]) is int
    assert type(claims(flag=0).claim("flag")) is int
    assert claims(flag=False).claim("flag") is False
    assert claims(flag=[[True]]).claim("flag") == ((True,),)  # nested: checked item by item
    nested = claims(flag=[[1]]).claim("flag")
    assert isinstance(nested, tuple) and type(nested[0][0]) is int
    # Text values are shared: one tuple for every token of the same user.
    assert claims(tenant_id="t-9").attributes is claims(tenant_id="t-9").attributes
