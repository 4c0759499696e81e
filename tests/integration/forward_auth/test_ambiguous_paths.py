"""Ambiguous paths are refused with 400 on all three front doors, audited (CONTRACT §3, §4).

Reproductions from the security review, against ``tests/data/policy.toml``:
``/public/..;/admin/users`` without credentials, bob (``tenant_id=t-002``) on
``/tenants/t-002/..;/t-001/orders``, and ``/admin;x=1/users``, ``/ADMIN/users``,
``/payments;x/1`` reaching the "signed in" rule. Each was a 200; each must be
a 400 problem+json with ``reason: ambiguous_path`` before any rule is tried,
for APIs and browsers alike, and become an ``access.denied`` audit event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.fakes.keycloak import FakeKeycloak

BROWSER = {"Accept": "text/html,application/xhtml+xml"}

Door = Callable[[AsyncTestClient[Litestar], str, dict[str, str]], Awaitable[httpx.Response]]


async def forward_auth(
    client: AsyncTestClient[Litestar], uri: str, headers: dict[str, str]
) -> httpx.Response:
    """Traefik/Caddy: the original request in X-Forwarded-*."""
    forwarded = {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "app.test",
        "X-Forwarded-Uri": uri,
    }
    return await client.get(
        "/authz/forward-auth", headers={**forwarded, **headers}, follow_redirects=False
    )


async def auth_request(
    client: AsyncTestClient[Litestar], uri: str, headers: dict[str, str]
) -> httpx.Response:
    """nginx: the original URL in X-Original-URL."""
    original = {"X-Original-URL": f"https://app.test{uri}", "X-Original-Method": "GET"}
    return await client.get(
        "/authz/auth-request", headers={**original, **headers}, follow_redirects=False
    )


async def ext_authz(
    client: AsyncTestClient[Litestar], uri: str, headers: dict[str, str]
) -> httpx.Response:
    """Envoy: the original path after the prefix, sent as is."""
    return await client.get(
        f"/authz/ext-authz{uri}", headers={"Host": "app.test", **headers}, follow_redirects=False
    )


DOORS: dict[str, Door] = {
    "forward-auth": forward_auth,
    "auth-request": auth_request,
    "ext-authz": ext_authz,
}


@pytest.fixture
def idp_env(base_env: dict[str, str], idp: FakeKeycloak) -> dict[str, str]:
    """The stand-in IdP, and every denial written as its own audit event (no aggregation)."""
    return {**base_env, "AUTH_OIDC_ISSUER": idp.issuer, "AUTH_AUDIT_AGGREGATE_WINDOW": "0"}


def assert_refused(r: httpx.Response, reason: str = "ambiguous_path") -> None:
    """400 problem+json with the reason, no identity, no redirect."""
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert (body["status"], body["reason"]) == (400, reason)
    assert body["request_id"] == r.headers["x-request-id"]
    assert "location" not in r.headers and "x-auth-redirect" not in r.headers
    assert not [h for h in r.headers if h.startswith("x-auth-")]


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("browser", [False, True], ids=["api", "browser"])
async def test_anonymous_rule_does_not_decide_public_dotdot_semicolon(
    service: AsyncTestClient[Litestar], door: str, browser: bool
) -> None:
    """``/public/..;/admin/users`` without credentials: 400, never 200, never a login redirect."""
    r = await DOORS[door](service, "/public/..;/admin/users", BROWSER if browser else {})
    assert_refused(r)
    control = await DOORS[door](service, "/public/page", {})
    assert control.status_code == 200  # the anonymous rule itself still works


@pytest.mark.parametrize("door", list(DOORS))
async def test_tenant_cannot_step_into_another_tenant(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak, door: str
) -> None:
    """bob (t-002) on ``/tenants/t-002/..;/t-001/orders``: 400, no X-Auth-Tenant."""
    bob = {"Authorization": f"Bearer {idp.mint_access_token('bob')}"}
    r = await DOORS[door](service, "/tenants/t-002/..;/t-001/orders", bob)
    assert_refused(r)
    own = await DOORS[door](service, "/tenants/t-002/orders", bob)
    assert own.status_code == 200 and own.headers["x-auth-tenant"] == "t-002"
    other = await DOORS[door](service, "/tenants/t-001/orders", bob)
    assert (other.status_code, other.json()["reason"]) == (403, "claim_mismatch")


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize(
    "uri",
    [
        "/admin;x=1/users",
        "/ADMIN/users",
        "/payments;x/1",
        "/Admin/users",
        "/PAYMENTS/1",
        "/public/..\\admin/users",
        "/public%2F..%2Fadmin/users",
        "/public/..%5Cadmin/users",
        "/admin%3Bx/users",
        "/admin%00/users",
    ],
)
async def test_signed_in_rule_is_not_reached_around_roles_and_mfa(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak, door: str, uri: str
) -> None:
    """bob has neither auth-admin nor TOTP: such paths are 400, not "signed in" 200s."""
    bob = {"Authorization": f"Bearer {idp.mint_access_token('bob')}"}
    assert_refused(await DOORS[door](service, uri, bob))
    assert_refused(await DOORS[door](service, uri, BROWSER))


@pytest.mark.parametrize("door", ["forward-auth", "auth-request"])
async def test_a_fragment_in_the_path_is_refused(
    service: AsyncTestClient[Litestar], door: str
) -> None:
    """``/public/x#/../../admin``: cut at '#' by some, routed to /admin by others: 400."""
    assert_refused(await DOORS[door](service, "/public/x#/../../admin/users", {}))
    query = await DOORS[door](service, "/public/x?q=#/../../admin", {})
    assert query.status_code == 200  # after '?' it is the query's business


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("uri", ["/public/%zz", "/public/%ff"])
async def test_undecodable_paths_are_invalid_path(
    service: AsyncTestClient[Litestar], door: str, uri: str
) -> None:
    """Invalid percent-encoding or UTF-8: 400 with reason invalid_path."""
    assert_refused(await DOORS[door](service, uri, {}), "invalid_path")


async def test_refusals_are_audited_as_denials(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak, database_url: str
) -> None:
    """Every door's refusal is an access.denied event with reason ambiguous_path."""
    bob = f"Bearer {idp.mint_access_token('bob')}"
    sent: dict[str, str] = {}
    for door, ask in DOORS.items():
        rid = f"rid-ambiguous-{door}-{time.monotonic_ns()}"
        r = await ask(service, "/admin;x=1/users", {"X-Request-ID": rid, "Authorization": bob})
        assert_refused(r)
        sent[rid] = door
    conn = await asyncpg.connect(database_url)
    try:
        rows: list[asyncpg.Record] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # poll: the audit writer is asynchronous
            rows = await conn.fetch(
                "SELECT type, outcome, reason, request_id, details->>'path' AS path"
                " FROM audit_events WHERE request_id = ANY($1::text[])",
                list(sent),
            )
            if len(rows) == len(sent):
                break
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    assert {row["request_id"] for row in rows} == set(sent)
    for row in rows:
        assert (row["type"], row["outcome"], row["reason"]) == (
            "access.denied",
            "denied",
            "ambiguous_path",
        )
        assert row["path"] == "/admin;x=1/users"
