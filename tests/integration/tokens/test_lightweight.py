"""Lightweight tokens by shape only (CONTRACT §4, issue 14 item 1), against the stand-in IdP,
which counts its introspection calls.

A full token that lacks an optional claim is decided on what it carries (no IdP call); a
lightweight token whose decision needs a missing claim is introspected once, and the answer or
the failure is cached until the token expires.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from auth_service.app import create_app
from auth_service.config import Settings
from tests.conftest import DATA
from tests.fakes.keycloak import FakeKeycloak
from tests.integration.forward_auth.conftest import auth_request
from tests.support.processes import eventually

LAB_RULE = """
[[rules]]
name = "lab members"
paths = ["/lab/**"]
require_claims = { groups = "lab" }
"""


def _policy(tmp_path: Path) -> str:
    """tests/data/policy.toml with a ``groups`` rule in front of the catch-all."""
    text = (DATA / "policy.toml").read_text()
    head, sep, tail = text.partition('[[rules]]\nname = "everything else, signed in"')
    assert sep, "the test policy's catch-all rule moved"
    path = tmp_path / "policy.toml"
    path.write_text(head + LAB_RULE.lstrip() + "\n" + sep + tail)
    return str(path)


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app in-process through `create_app`, IdP discovered and revocations synced."""
    app = create_app(settings, configure_logs=False)
    async with AsyncTestClient(app, base_url="http://auth.test") as client:
        services = app.state.services
        await eventually(
            lambda: services.idp.ready and services.revocations.synced.is_set(),
            "IdP discovery and revocation sync",
        )
        yield client


async def _introspections(client: AsyncTestClient[Litestar]) -> dict[str, float]:
    text = (await client.get("/metrics")).text
    found = re.findall(r'^auth_idp_introspections_total\{outcome="(\w+)"\} (\S+)$', text, re.M)
    return {outcome: float(value) for outcome, value in found}


async def test_full_token_without_optional_claims_never_calls_the_idp(
    idp_settings: Settings, idp: FakeKeycloak, tmp_path: Path
) -> None:
    """Fresh full tokens without ``groups``/``tenant_id``: 0 introspection calls; decided on what
    they carry (allowed where no claim is needed, 403 claim_mismatch where one is)."""
    settings = msgspec.structs.replace(idp_settings, policy_file=_policy(tmp_path))
    async with running(settings) as client:
        before = idp.requests["introspect"]
        for _ in range(10):
            token = idp.mint_access_token(extra_claims={"tenant_id": None, "groups": None})
            allowed = await auth_request(client, token=token, url="https://app.test/orders/1")
            assert allowed.status_code == 200, allowed.text
            assert "x-auth-tenant" not in allowed.headers
            assert allowed.headers["x-auth-user"] == "alice"
            for url in ("https://app.test/lab/x", "https://app.test/tenants/t-001/x"):
                denied = await auth_request(client, token=token, url=url)
                assert denied.status_code == 403
                assert denied.json()["reason"] == "claim_mismatch"
        # A service-account-like token: roles only as client roles, no tenant, no groups.
        token = idp.mint_access_token(
            extra_claims={"realm_access": None, "tenant_id": None, "preferred_username": None}
        )
        assert (await auth_request(client, token=token)).status_code == 200
        assert idp.requests["introspect"] == before
        assert sum((await _introspections(client)).values()) == 0


async def test_lightweight_token_needing_claims_is_introspected_once(
    idp_settings: Settings, idp: FakeKeycloak, tmp_path: Path
) -> None:
    """A lightweight token (no sub, no roles) → exactly 1 introspection call for many requests,
    and its completed claims decide (tenant t-001 allowed, t-002 refused)."""
    settings = msgspec.structs.replace(idp_settings, policy_file=_policy(tmp_path))
    async with running(settings) as client:
        token = idp.mint_access_token("alice", lightweight=True, client_id="auth-service")
        before = idp.requests["introspect"]
        for i in range(30):
            r = await auth_request(client, token=token, url=f"https://app.test/tenants/t-001/{i}")
            assert r.status_code == 200, r.text
            assert r.headers["x-auth-tenant"] == "t-001"
            assert "orders-writer" in r.headers["x-auth-roles"].split(",")
        denied = await auth_request(client, token=token, url="https://app.test/tenants/t-002/x")
        assert denied.status_code == 403
        assert idp.requests["introspect"] - before == 1
        assert await _introspections(client) == {"ok": 1.0}


async def test_failed_introspection_is_cached_until_the_token_expires(
    idp_settings: Settings, idp: FakeKeycloak
) -> None:
    """The IdP answers 500: the lightweight token gets 503 idp_unavailable after exactly one
    call, and keeps getting it without a second call, even once the IdP is healthy again;
    a new lightweight token is then completed normally (one more call)."""
    async with running(idp_settings) as client:
        token = idp.mint_access_token("alice", lightweight=True, client_id="auth-service")
        before = idp.requests["introspect"]
        idp.set_fault("introspect", "error500")
        try:
            for _ in range(20):
                r = await auth_request(client, token=token)
                assert r.status_code == 503
                assert r.json()["reason"] == "idp_unavailable"
                assert r.headers["retry-after"]
        finally:
            idp.clear_faults()
        assert idp.requests["introspect"] - before == 1
        assert (await auth_request(client, token=token)).status_code == 503
        assert idp.requests["introspect"] - before == 1
        fresh = idp.mint_access_token("alice", lightweight=True, client_id="auth-service")
        assert (await auth_request(client, token=fresh)).status_code == 200
        assert idp.requests["introspect"] - before == 2
        assert await _introspections(client) == {"error": 1.0, "ok": 1.0}


async def test_a_hanging_idp_is_waited_for_at_most_the_introspection_timeout(
    idp_settings: Settings, idp: FakeKeycloak
) -> None:
    """With the introspection endpoint hanging (and AUTH_IDP_TIMEOUT at 30 s), the request is
    answered 503 while the IdP still hangs: the wait is bounded by AUTH_INTROSPECTION_TIMEOUT
    (counted as a timeout), and the failure is cached like any other."""
    settings = msgspec.structs.replace(idp_settings, idp_timeout=30.0, introspection_timeout=0.2)
    async with running(settings) as client:
        token = idp.mint_access_token("alice", lightweight=True, client_id="auth-service")
        before = idp.requests["introspect"]
        idp.set_fault("introspect", "hang")
        try:
            r = await auth_request(client, token=token)
            assert r.status_code == 503 and r.json()["reason"] == "idp_unavailable"
            assert "introspect" in idp.faults  # answered while the IdP was still hanging
            assert (await auth_request(client, token=token)).status_code == 503
        finally:
            idp.clear_faults()
        assert idp.requests["introspect"] - before == 1
        assert await _introspections(client) == {"timeout": 1.0}
