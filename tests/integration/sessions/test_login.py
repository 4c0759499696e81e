"""The login flow in-process: /auth/login → stand-in form → callback → cookie → forward-auth."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from tests.fakes.keycloak import FakeKeycloak
from tests.integration.sessions.conftest import (
    audited,
    browser_login,
    forward_auth,
    session_cookie,
    start_login,
)


async def test_login_sets_cookie_and_forward_auth_accepts_it(
    web: AsyncTestClient[Litestar],
    idp: FakeKeycloak,
    audit_events: list[tuple[str, str, str | None]],
) -> None:
    """A completed login sets an HttpOnly, SameSite=Lax session cookie of 256 random bits and
    redirects to ``rd``; forward-auth then answers 200 with alice's identity headers."""
    r = await browser_login(web, rd="/orders/1")
    assert r.status_code == 302, r.text
    assert r.headers["location"] == "http://auth.test/orders/1"
    set_cookie = r.headers["set-cookie"]
    assert set_cookie.startswith("auth_session=")
    assert "HttpOnly" in set_cookie and "samesite=lax" in set_cookie.lower()
    assert "secure" not in set_cookie.lower()
    assert len(session_cookie(web)) == 43
    await audited(audit_events, "login.success")

    allowed = await forward_auth(web)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["x-auth-user"] == "alice"
    assert allowed.headers["x-auth-tenant"] == "t-001"
    assert allowed.headers["x-auth-assertion"]


async def test_userinfo_shows_the_session_identity(
    web: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """``/auth/userinfo`` with the cookie returns sub, username, email, sorted roles, attributes."""
    await browser_login(web)
    r = await web.get("/auth/userinfo")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["username"] == "alice"
    assert body["sub"] == idp.users["alice"].sub
    assert body["email"] == "alice@example.com"
    assert body["roles"] == sorted(body["roles"]) and "app-user" in body["roles"]
    assert body["client_roles"]["orders-api"] == ["write"]
    assert body["attributes"]["tenant_id"] == "t-001"
    assert body["mfa"] == "none"
    assert r.headers["cache-control"] == "no-store"


async def test_userinfo_accepts_a_bearer_token(
    web: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """Without a session, ``/auth/userinfo`` answers for a bearer token."""
    token = idp.mint_access_token("bob")
    r = await web.get("/auth/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json()["username"] == "bob"


async def test_userinfo_without_credentials_is_401(web: AsyncTestClient[Litestar]) -> None:
    """No cookie, no bearer: 401 problem+json."""
    r = await web.get("/auth/userinfo")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_authorization_request_uses_pkce_state_and_nonce(
    web: AsyncTestClient[Litestar], idp: FakeKeycloak, redis_client: Redis, redis_prefix: str
) -> None:
    """The authorization URL carries code flow, S256 challenge, state, nonce and our callback;
    the state is kept server-side with a short TTL."""
    url = await start_login(web)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(f"{idp.issuer}/protocol/openid-connect/auth?")
    assert query["response_type"] == "code"
    assert query["client_id"] == "auth-service"
    assert query["redirect_uri"] == "http://auth.test/auth/callback"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    assert "openid" in query["scope"].split()
    keys = [k async for k in redis_client.scan_iter(match=f"{redis_prefix}login-state:*")]
    assert keys
    ttl = await redis_client.ttl(keys[0])
    assert 0 < ttl <= 600


async def test_login_refuses_an_unsafe_rd(web: AsyncTestClient[Litestar]) -> None:
    """``/auth/login?rd=//evil.com`` is a 400, and no redirect happens."""
    r = await web.get("/auth/login", params={"rd": "//evil.com"})
    assert r.status_code == 400
    assert "location" not in r.headers
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["reason"] == "invalid_redirect"


async def test_unknown_or_missing_cookie_sends_browsers_to_login(
    web: AsyncTestClient[Litestar],
) -> None:
    """A cookie naming no session: browsers are redirected to login, API callers get 401."""
    bogus = "A" * 43
    browser = await forward_auth(web, browser=True, cookie=bogus)
    assert browser.status_code == 302
    assert browser.headers["location"].startswith("http://auth.test/auth/login?rd=")
    api = await forward_auth(web, cookie=bogus)
    assert api.status_code == 401
    assert api.json()["reason"] == "session_expired"


async def test_callback_sends_to_the_mfa_page_when_the_target_rule_requires_it(
    web: AsyncTestClient[Litestar],
) -> None:
    """Logging in to return to a ``require_mfa`` path lands on the MFA page with that rd."""
    r = await browser_login(web, rd="/payments/7")
    assert r.status_code == 302, r.text
    assert r.headers["location"] == (
        "http://auth.test/auth/mfa?rd=http%3A%2F%2Fauth.test%2Fpayments%2F7"
    )
    plain = await browser_login(web, rd="/orders/1")
    assert plain.headers["location"] == "http://auth.test/orders/1"
