"""Forward-auth audit events through the production-wired app: who was denied, by which rule,
for what; and aggregation that never hides who or which paths (CONTRACT §9)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.fakes.keycloak import FakeKeycloak
from tests.integration.forward_auth.conftest import auth_request


@pytest.fixture
def idp_env(base_env: dict[str, str], idp: FakeKeycloak) -> dict[str, str]:
    """The stand-in's issuer, and a 1 s aggregation window so summaries land quickly."""
    return {**base_env, "AUTH_OIDC_ISSUER": idp.issuer, "AUTH_AUDIT_AGGREGATE_WINDOW": "1"}


async def _rows(pool: asyncpg.Pool, sql: str, *args: Any, want: int) -> list[dict[str, Any]]:
    """Poll (bounded) until the query returns at least ``want`` rows; details decoded."""
    deadline = time.monotonic() + 15
    while True:
        rows = [dict(r) for r in await pool.fetch(sql, *args)]
        if len(rows) >= want:
            for r in rows:
                r["details"] = json.loads(r["details"])
            return rows
        assert time.monotonic() < deadline, f"only {len(rows)} of {want} audit rows landed"
        await asyncio.sleep(0.05)  # poll interval: the writer is asynchronous


@pytest.mark.parametrize(
    ("method", "url", "status", "reason", "rule"),
    [
        ("POST", "https://app.test/orders/1", 403, "missing_role", "orders writes"),
        ("GET", "https://app.test/tenants/t-001/x", 403, "claim_mismatch", "tenant isolation"),
        ("GET", "https://app.test/payments/7", 401, "mfa_required", "payments need TOTP"),
    ],
)
async def test_identified_callers_denial_carries_sub_rule_and_request(
    service: AsyncTestClient[Litestar],
    idp: FakeKeycloak,
    pool: asyncpg.Pool,
    method: str,
    url: str,
    status: int,
    reason: str,
    rule: str,
) -> None:
    """Bob's valid token, then denied: his sub is actor and subject; rule, method, host and
    path are in the details; the token itself is nowhere in the event."""
    token = idp.mint_access_token("bob")
    rid = f"rid-{uuid.uuid4().hex[:12]}"
    r = await auth_request(
        service, token=token, url=url + "?q=1", method=method, headers={"X-Request-ID": rid}
    )
    assert r.status_code == status
    (row,) = await _rows(
        pool,
        "SELECT actor_sub, subject_sub, type, outcome, reason, details::text AS details "
        "FROM audit_events WHERE request_id = $1",
        rid,
        want=1,
    )
    bob = idp.users["bob"].sub
    assert (row["actor_sub"], row["subject_sub"]) == (bob, bob)
    assert (row["type"], row["outcome"], row["reason"]) == ("access.denied", "denied", reason)
    path = url.removeprefix("https://app.test")
    assert row["details"] == {
        "rule": rule,
        "method": method,
        "host": "app.test",
        "path": path,
        "status": status,
    }
    assert token not in json.dumps(row)


async def test_aggregation_keeps_who_and_which_paths(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak, pool: asyncpg.Pool
) -> None:
    """The review's case: one throwaway denial (alice), then three denials of /admin/* by an
    insider (bob), same reason and source. Nothing is merged across callers; bob's events
    still say bob, the rule, and every path he asked for."""
    tag = uuid.uuid4().hex[:8]
    alice, bob = idp.mint_access_token("alice"), idp.mint_access_token("bob")
    throwaway = await auth_request(service, token=alice, url=f"https://app.test/admin/{tag}/x")
    assert throwaway.status_code == 403
    paths = [f"/admin/{tag}/users", f"/admin/{tag}/keys", f"/admin/{tag}/audit"]
    for p in paths:
        r = await auth_request(service, token=bob, url=f"https://app.test{p}")
        assert r.status_code == 403
    rows = await _rows(
        pool,
        "SELECT actor_sub, subject_sub, count, reason, details::text AS details "
        "FROM audit_events WHERE type = 'access.denied' AND details::text LIKE $1 ORDER BY seq",
        f"%/admin/{tag}/%",
        want=3,  # alice, bob's first, bob's summary
    )
    subs = {idp.users[u].sub: u for u in ("alice", "bob")}
    assert all(r["actor_sub"] is not None for r in rows), rows
    assert all(r["actor_sub"] == r["subject_sub"] for r in rows)
    assert all(r["details"]["rule"] == "admin area" for r in rows)
    by_user: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_user.setdefault(subs[r["actor_sub"]], []).append(r)
    assert [r["count"] for r in by_user["alice"]] == [1]
    assert sum(r["count"] for r in by_user["bob"]) == 3
    seen = [r["details"].get("path") for r in by_user["bob"] if "path" in r["details"]]
    summary = [r for r in by_user["bob"] if r["details"].get("aggregated")]
    assert len(summary) == 1 and summary[0]["count"] == 2
    seen += summary[0]["details"]["paths"]
    assert sorted(seen) == sorted(paths)
    assert summary[0]["details"]["paths_truncated"] is False
    assert summary[0]["details"]["methods"] == ["GET"]
