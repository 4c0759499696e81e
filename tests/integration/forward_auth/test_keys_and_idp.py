"""Key rotation, single-flight JWKS refresh, IdP outages, lightweight tokens, introspection."""

from __future__ import annotations

import asyncio
import base64
import secrets

from litestar import Litestar
from litestar.testing import AsyncTestClient

from auth_service.app import create_app
from auth_service.config import Settings, load_settings
from tests.fakes.keycloak import FakeKeycloak, StandInServer
from tests.integration.forward_auth.conftest import auth_request
from tests.support.processes import eventually


async def test_rotation_new_kid_verifies_after_exactly_one_fetch_for_200_concurrent(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """After the IdP rotates, 200 concurrent requests with the new kid cause one JWKS fetch."""
    idp.rotate_keys()
    token = idp.mint_access_token()
    before = idp.requests["jwks"]
    results = await asyncio.gather(*(auth_request(service, token=token) for _ in range(200)))
    assert {r.status_code for r in results} == {200}
    assert idp.requests["jwks"] - before == 1


async def test_idp_down_known_keys_work_unknown_kid_401_then_recovers(
    keycloak: tuple[FakeKeycloak, StandInServer], service: AsyncTestClient[Litestar]
) -> None:
    """With Keycloak stopped, cached keys verify, new kids get 401; it recovers by itself."""
    idp, server = keycloak
    known = idp.mint_access_token()
    server.stop()
    try:
        assert (await auth_request(service, token=known)).status_code == 200
        assert (
            await auth_request(service, token=idp.mint_access_token(lifetime=200))
        ).status_code == 200
        idp.rotate_keys()
        unknown = idp.mint_access_token()
        r = await auth_request(service, token=unknown)
        assert r.status_code == 401
        assert r.json()["reason"] == "unknown_kid"
    finally:
        server.start()
    # The refresh interval (10 s) still blocks an immediate re-fetch; a forced refresh
    # stands in for the background refresh that follows.
    provider = service.app.state.services.idp
    assert provider.jwks is not None
    service.blocking_portal.call(provider.jwks.refresh, True)
    assert (await auth_request(service, token=unknown)).status_code == 200


async def test_garbage_jwks_keeps_old_keys(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """A JWKS answer that is junk is ignored: known tokens still verify."""
    idp.set_fault("jwks", "garbage")
    provider = service.app.state.services.idp
    assert service.blocking_portal.call(provider.jwks.refresh, True) is False
    assert (await auth_request(service, token=idp.mint_access_token())).status_code == 200


async def test_idp_never_reachable_answers_503_and_not_ready(settings: Settings) -> None:
    """Before discovery ever succeeds a token cannot be checked: 503 with Retry-After."""
    app = create_app(settings, configure_logs=False)
    async with AsyncTestClient(app) as client:
        r = await auth_request(client, token="eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
        assert r.status_code == 503
        assert r.headers["retry-after"]
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["oidc"] == "down"


async def test_instance_that_cannot_decrypt_the_signing_key_answers_503(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak, idp_env: dict[str, str]
) -> None:
    """A valid token meets an instance whose AUTH_SECRET_KEYS cannot open the shared key.

    The decision cannot carry its ``X-Auth-Assertion``: 503 with ``Retry-After`` and
    ``reason`` ``signing_keys_unavailable``, never a 500 or a 200 without the assertion.
    """
    token = idp.mint_access_token()
    assert (await auth_request(service, token=token)).status_code == 200  # the key exists
    wrong = base64.b64encode(secrets.token_bytes(32)).decode()
    other_settings = load_settings({**idp_env, "AUTH_SECRET_KEYS": f"k9:{wrong}"}, env_file=False)
    app = create_app(other_settings, configure_logs=False)
    async with AsyncTestClient(app, base_url="http://auth.test") as other:
        services = app.state.services
        await eventually(
            lambda: services.idp.ready and services.revocations.ever_synced,
            "IdP discovery and revocation sync",
        )
        r = await auth_request(other, token=token)
        assert r.status_code == 503
        assert r.headers["retry-after"]
        assert r.json()["reason"] == "signing_keys_unavailable"
        assert "x-auth-assertion" not in r.headers
    assert (await auth_request(service, token=token)).status_code == 200


async def test_lightweight_token_is_completed_by_one_introspection(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """A lightweight token (no sub, roles, tenant) is introspected once, then served from cache."""
    token = idp.mint_access_token("alice", lightweight=True, client_id="auth-service")
    before = idp.requests["introspect"]
    first = await auth_request(service, token=token, url="https://app.test/tenants/t-001/x")
    second = await auth_request(service, token=token, url="https://app.test/tenants/t-001/y")
    assert (first.status_code, second.status_code) == (200, 200), first.text
    assert first.headers["x-auth-user"] == "alice"
    assert first.headers["x-auth-tenant"] == "t-001"
    assert idp.requests["introspect"] - before == 1


async def test_idp_calls_of_a_check_carry_its_request_id(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """The JWKS refresh and the introspection a check causes send its X-Request-ID (CONTRACT §2)."""
    idp.rotate_keys()
    rotated = idp.mint_access_token()
    light = idp.mint_access_token("alice", lightweight=True, client_id="auth-service")
    first = len(idp.request_log)
    r = await auth_request(service, token=rotated, headers={"X-Request-ID": "rid-new-kid"})
    assert r.status_code == 200
    url = "https://app.test/tenants/t-001/x"
    r = await auth_request(service, token=light, url=url, headers={"X-Request-ID": "rid-light"})
    assert r.status_code == 200, r.text
    calls = [(name, h.get("x-request-id")) for name, h in idp.request_log[first:]]
    assert ("jwks", "rid-new-kid") in calls
    assert ("introspect", "rid-light") in calls


async def test_introspect_endpoint(service: AsyncTestClient[Litestar], idp: FakeKeycloak) -> None:
    """RFC 7662: active details for a good token, {"active": false} for junk, 403 without role."""
    caller = idp.mint_access_token("alice")  # alice holds token-introspector
    token = idp.mint_access_token("bob")
    auth = {"Authorization": f"Bearer {caller}"}
    r = await service.post("/tokens/introspect", data={"token": token}, headers=auth)
    assert r.status_code == 200
    body = r.json()
    assert body["active"] is True
    assert body["username"] == "bob"
    assert body["attributes"]["tenant_id"] == "t-002"
    assert body["mfa"] == "none"
    assert {
        "sub",
        "client_id",
        "scope",
        "exp",
        "iat",
        "iss",
        "aud",
        "roles",
        "client_roles",
    } <= set(body)
    junk = await service.post("/tokens/introspect", data={"token": "junk"}, headers=auth)
    assert junk.json() == {"active": False}
    bob = {"Authorization": f"Bearer {token}"}
    assert (
        await service.post("/tokens/introspect", data={"token": token}, headers=bob)
    ).status_code == 403
    assert (await service.post("/tokens/introspect", data={"token": token})).status_code == 401


async def test_admin_revocation_refuses_cached_token(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """Revoking a sid through the admin API makes a cached token of that sid 401 token_revoked."""
    token = idp.mint_access_token("bob")
    assert (await auth_request(service, token=token)).status_code == 200
    sid = idp.verify(token)["sid"]
    admin = idp.mint_access_token("admin")
    r = await service.post(
        "/admin/revocations", json={"sid": sid}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert r.status_code == 204
    after = await auth_request(service, token=token)
    assert after.status_code == 401
    assert after.json()["reason"] == "token_revoked"
    denied = await service.post(
        "/admin/revocations", json={"sid": "x"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert denied.status_code in (401, 403)


async def test_admin_revocation_refuses_a_ttl_below_one_second(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """A negative ``ttl`` is the caller's error (400), not a Redis failure dressed as 503 that
    leaves the sid unrevoked; the same request with a valid ttl revokes."""
    token = idp.mint_access_token("bob")
    sid = idp.verify(token)["sid"]
    admin = {"Authorization": f"Bearer {idp.mint_access_token('admin')}"}
    bad = await service.post("/admin/revocations", json={"sid": sid, "ttl": -5}, headers=admin)
    assert bad.status_code == 400, bad.text
    assert (await auth_request(service, token=token)).status_code == 200
    ok = await service.post("/admin/revocations", json={"sid": sid, "ttl": 600}, headers=admin)
    assert ok.status_code == 204
    assert (await auth_request(service, token=token)).json()["reason"] == "token_revoked"
