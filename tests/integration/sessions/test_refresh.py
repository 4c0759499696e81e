"""Refreshing a session's access token: when it nears expiry, once per session across workers."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from auth_service.config import Settings
from auth_service.sessions.store import SessionRecord, session_hash
from tests.fakes.keycloak import FakeKeycloak
from tests.integration.sessions.conftest import (
    Events,
    audited,
    browser_login,
    forward_auth,
    running,
    session_cookie,
)


async def _login_expiring(client: AsyncTestClient[Litestar], idp: FakeKeycloak) -> str:
    """Log in while the IdP issues 30 s access tokens (under the 60 s margin), then go back to
    300 s tokens so the refreshed token no longer needs refreshing."""
    idp.access_token_lifespan = 30
    assert (await browser_login(client)).status_code == 302
    idp.access_token_lifespan = 300
    return session_cookie(client)


async def test_expiring_token_is_refreshed_once(
    web: AsyncTestClient[Litestar], idp: FakeKeycloak, redis_client: Redis, redis_prefix: str
) -> None:
    """The first forward-auth after login refreshes (one token request), later ones do not;
    the rotated tokens are stored (version 2)."""
    cookie = await _login_expiring(web, idp)
    assert idp.requests["token"] == 1  # the code exchange
    assert (await forward_auth(web)).status_code == 200
    assert idp.requests["token"] == 2
    for _ in range(3):
        assert (await forward_auth(web)).status_code == 200
    assert idp.requests["token"] == 2
    raw = await redis_client.get(f"{redis_prefix}session:{session_hash(cookie)}")
    assert msgspec.msgpack.decode(raw, type=SessionRecord).version == 2


async def test_concurrent_refresh_across_two_workers_happens_once(
    idp_settings: Settings, idp: FakeKeycloak
) -> None:
    """50 simultaneous forward-auth calls, spread over two app instances sharing Redis, on a
    session whose token is expiring: exactly one refresh request reaches the IdP, all 50 pass."""
    async with running(idp_settings) as one, running(idp_settings) as two:
        cookie = await _login_expiring(one, idp)
        idp.set_fault("token", "slow", delay=0.3)  # keep the refresh in flight while others arrive
        before = idp.requests["token"]
        calls = [forward_auth(c, cookie=cookie) for c in (one, two) for _ in range(25)]
        results = await asyncio.gather(*calls)
        idp.clear_faults()
    assert [r.status_code for r in results] == [200] * 50, [r.text for r in results][:3]
    assert idp.requests["token"] - before == 1
    assert {r.headers["x-auth-user"] for r in results} == {"alice"}


async def test_refused_refresh_ends_the_session(
    web: AsyncTestClient[Litestar],
    idp: FakeKeycloak,
    redis_client: Redis,
    redis_prefix: str,
    audit_events: Events,
) -> None:
    """When the IdP refuses the refresh token (its session ended), the session is deleted:
    browsers go back to login, API callers get 401, and the failure is audited."""
    cookie = await _login_expiring(web, idp)
    for session in idp.sessions.values():
        session.active = False  # ended at the IdP without a back-channel call
    browser = await forward_auth(web, browser=True)
    assert browser.status_code == 302
    assert "/auth/login?rd=" in browser.headers["location"]
    api = await forward_auth(web)
    assert api.status_code == 401
    assert api.json()["reason"] == "session_expired"
    assert await redis_client.get(f"{redis_prefix}session:{session_hash(cookie)}") is None
    await audited(audit_events, "refresh.failure", "invalid_grant")
    await audited(audit_events, "session.revoked", "refresh_failed")


async def test_unreachable_idp_keeps_a_still_valid_token(
    web: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """If the token endpoint fails while the access token is still valid, the request is
    decided with the current token (200) and the session survives for a later refresh."""
    await _login_expiring(web, idp)
    idp.set_fault("token", "error500")
    assert (await forward_auth(web)).status_code == 200
    idp.clear_faults()
    assert (await forward_auth(web)).status_code == 200
