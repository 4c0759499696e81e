"""The client-address rule through the real server (`auth-service serve`, granian): the TCP
peer granian reports decides whether forwarded headers are believed."""

from __future__ import annotations

import secrets

import asyncpg
import httpx
import pytest

from tests.integration.own_endpoints.conftest import events_of
from tests.support.processes import ServiceProcess

CHECK = {
    "X-Forwarded-Method": "GET",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.test",
    "X-Forwarded-Uri": "/admin/users",
    "X-Forwarded-For": "192.0.2.1, 198.51.100.9",
    "X-Real-IP": "192.0.2.2",
}


@pytest.mark.parametrize(
    ("trusted", "source"),
    [("192.0.2.250/32", "127.0.0.1"), ("127.0.0.0/8,::1", "198.51.100.9")],
    ids=["peer-untrusted", "peer-trusted"],
)
async def test_served_audit_source_follows_trusted_proxies(
    idp_env: dict[str, str], pool: asyncpg.Pool, trusted: str, source: str
) -> None:
    """This test connects from 127.0.0.1. When that is not a trusted proxy, the audited
    source of a forward-auth denial is 127.0.0.1 whatever X-Forwarded-For says; when it is,
    the right-most untrusted X-Forwarded-For entry is."""
    env = {**idp_env, "AUTH_TRUSTED_PROXIES": trusted, "AUTH_AUDIT_AGGREGATE_WINDOW": "0"}
    rid = f"served-{secrets.token_hex(6)}"
    with ServiceProcess(env) as svc:
        async with httpx.AsyncClient(base_url=svc.url, timeout=10) as http:
            r = await http.get("/authz/forward-auth", headers={**CHECK, "X-Request-ID": rid})
        assert r.status_code == 401
        rows = await events_of(pool, rid, timeout=20)
    assert [row["ip"] for row in rows] == [source]
