"""Litestar integration: ``verifier_middleware`` and the role/scope guards on a tiny app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar, Request, get
from litestar.testing import AsyncTestClient

from auth_service.verifier import (
    Claims,
    JWKSCache,
    claims_of,
    requires_client_role,
    requires_realm_role,
    requires_scope,
    verifier_middleware,
)

from .support import JWKS_URI, FakeClock, JWKSEndpoint, access_claims, make_verifier, rsa_key, sign


@get("/me", guards=[requires_realm_role("app-user")])
async def me(request: Request[Any, Any, Any]) -> dict[str, object]:
    """Echo what a handler sees through ``request.state`` and ``claims_of``."""
    claims: Claims = request.state.auth_claims
    return {"user": claims.username, "same": claims_of(request) is claims}


@get("/admin", guards=[requires_realm_role("admin")])
async def admin() -> str:
    return "admin"


@get("/reports", guards=[requires_client_role("acme-api", "reader")])
async def reports() -> str:
    return "reports"


@get("/reports/edit", guards=[requires_client_role("acme-api", "writer")])
async def edit_reports() -> str:
    return "edit"


@get("/profile", guards=[requires_scope("profile")])
async def profile() -> str:
    return "profile"


@get("/write", guards=[requires_scope("orders:write")])
async def write() -> str:
    return "write"


@get("/open/guarded", guards=[requires_realm_role("app-user")])
async def open_but_guarded() -> str:
    return "never"


@get("/open/plain")
async def open_plain() -> str:
    return "plain"


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Litestar]]:
    endpoint = JWKSEndpoint()
    endpoint.serve(rsa_key())
    async with endpoint.client() as http:
        verifier = make_verifier(JWKSCache(JWKS_URI, http), FakeClock())
        app = Litestar(
            [me, admin, reports, edit_reports, profile, write, open_but_guarded, open_plain],
            middleware=[verifier_middleware(verifier, exclude_paths=["/open"])],
        )
        async with AsyncTestClient(app) as test_client:
            test_client.headers["Authorization"] = f"Bearer {sign(access_claims(), rsa_key())}"
            yield test_client


async def test_handler_sees_the_claims(client: AsyncTestClient[Litestar]) -> None:
    """Claims are on ``request.state.auth_claims`` and returned by ``claims_of``."""
    response = await client.get("/me")
    assert response.status_code == 200
    assert response.json() == {"user": "alice", "same": True}


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/admin", 403, "missing_role"),
        ("/reports", 200, None),
        ("/reports/edit", 403, "missing_role"),
        ("/profile", 200, None),
        ("/write", 403, "missing_scope"),
    ],
)
async def test_guards(
    client: AsyncTestClient[Litestar], path: str, status: int, reason: str | None
) -> None:
    """Realm-role, client-role and scope guards allow or answer 403 with a reason."""
    response = await client.get(path)
    assert response.status_code == status
    if reason is not None:
        assert response.json()["extra"] == {"reason": reason}


async def test_middleware_refuses_before_guards(client: AsyncTestClient[Litestar]) -> None:
    """A bad token never reaches routing or guards: the middleware answers 401 itself."""
    response = await client.get("/admin", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "malformed"


async def test_guard_without_claims_is_401(client: AsyncTestClient[Litestar]) -> None:
    """On an excluded path a guard finds no claims and answers 401, not 403."""
    del client.headers["Authorization"]
    assert (await client.get("/open/plain")).status_code == 200
    response = await client.get("/open/guarded")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
