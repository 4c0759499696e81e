"""Front-channel logout: session deleted, refresh token revoked, 302 to the IdP's end-session."""

from __future__ import annotations

import html.parser
from urllib.parse import parse_qs, urlsplit

from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from auth_service.sessions.store import session_hash
from tests.fakes.keycloak import FakeKeycloak
from tests.integration.sessions.conftest import (
    Events,
    audited,
    browser_login,
    forward_auth,
    session_cookie,
)


async def test_logout_ends_the_session_and_redirects_to_end_session(
    web: AsyncTestClient[Litestar],
    idp: FakeKeycloak,
    redis_client: Redis,
    redis_prefix: str,
    audit_events: Events,
) -> None:
    """``GET /auth/logout?rd=`` deletes the session, revokes the refresh token at the IdP,
    expires the cookie and redirects to end_session with id_token_hint and the return URL."""
    await browser_login(web)
    cookie = session_cookie(web)
    r = await web.get("/auth/logout", params={"rd": "https://app.test/bye"})
    assert r.status_code == 302, r.text
    location = r.headers["location"]
    assert location.startswith(f"{idp.issuer}/protocol/openid-connect/logout?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["post_logout_redirect_uri"] == "https://app.test/bye"
    assert query["client_id"] == "auth-service"
    assert query["id_token_hint"].count(".") == 2
    assert "max-age=0" in r.headers["set-cookie"].lower()
    assert idp.requests["revoke"] == 1
    assert await redis_client.get(f"{redis_prefix}session:{session_hash(cookie)}") is None
    after = await forward_auth(web, cookie=cookie)
    assert after.status_code == 401
    await audited(audit_events, "logout")


async def test_logout_refuses_an_unsafe_return_url(web: AsyncTestClient[Litestar]) -> None:
    """``post_logout_redirect_uri`` goes through the same open-redirect check: 400."""
    await browser_login(web)
    r = await web.get("/auth/logout", params={"rd": "https://evil.com/"})
    assert r.status_code == 400
    assert (await forward_auth(web)).status_code == 200  # the session was not touched


class _Hidden(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")


async def test_logout_form_requires_its_csrf_token(web: AsyncTestClient[Litestar]) -> None:
    """The sign-out form (POST) is refused without the session's CSRF token (403) and works
    with the token from the confirmation page, which carries the HTML security headers."""
    await browser_login(web)
    page = await web.get("/auth/logout/confirm", params={"rd": "/"})
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text.lower()
    form = _Hidden()
    form.feed(page.text)
    refused = await web.post("/auth/logout", data={"csrf_token": "forged", "rd": "/"})
    assert refused.status_code == 403
    assert (await forward_auth(web)).status_code == 200
    done = await web.post("/auth/logout", data=form.fields)
    assert done.status_code == 302
    assert (await forward_auth(web)).status_code == 401


async def test_logout_without_a_session_still_redirects(
    web: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """Logging out twice is harmless: 302 to end_session (without id_token_hint)."""
    r = await web.get("/auth/logout")
    assert r.status_code == 302
    assert "id_token_hint" not in r.headers["location"]
    # Without rd, the IdP sends the browser back to the "signed out" page.
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["post_logout_redirect_uri"] == ["http://auth.test/auth/signed-out"]
    page = await web.get("/auth/signed-out", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "You are signed out" in page.text
    assert 'rel="stylesheet"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_logout_form_refuses_a_non_ascii_csrf_token(web: AsyncTestClient[Litestar]) -> None:
    """A hostile non-ASCII ``csrf_token`` is a 403 problem like any forged one, never a 500
    (``hmac.compare_digest`` raises on non-ASCII text), and the session stays."""
    await browser_login(web)
    refused = await web.post("/auth/logout", data={"csrf_token": "\u00e9" * 43, "rd": "/"})
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert (await forward_auth(web)).status_code == 200
