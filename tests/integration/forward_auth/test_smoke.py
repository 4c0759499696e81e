"""Smoke: a valid bearer token passes nginx-style auth_request with identity headers."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.fakes.keycloak import FakeKeycloak


async def test_valid_token_is_allowed_with_identity(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """An access token for alice on a signed-in rule answers 200 with her identity."""
    token = idp.mint_access_token("alice")
    r = await service.get(
        "/authz/auth-request",
        headers={
            "Authorization": f"Bearer {token}",
            "X-Original-URL": "https://app.test/orders/1",
            "X-Original-Method": "GET",
            "X-Request-ID": "rid-1",
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-auth-user"] == "alice"
    assert r.headers["x-request-id"] == "rid-1"
    assert r.headers["x-auth-tenant"] == "t-001"
