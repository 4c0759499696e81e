"""One rule per security concern, seen from a browser with a real session: the caller
precedence (bearer, else cookie) everywhere, and the login's redirect rule on every page."""

from __future__ import annotations

import html
import re

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.fakes.keycloak import FakeKeycloak
from tests.integration.sessions.conftest import FORWARD, browser_login
from tests.support.tokens import parts, with_payload

HOSTILE = [
    "//evil.com",
    "/%2f%2fevil.com",
    "/%5cevil.com",
    "/\\evil.com",
    "/\uff0fevil.com",
    "https://app.test:99999/",
    "https://app.test@evil.com/",
    "https://evil.com/",
    "javascript:alert(1)",
    "/x\r\nSet-Cookie: a=b",
]


async def test_bearer_first_else_cookie_on_every_endpoint(
    web: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """With alice's session cookie in the jar: a bearer token decides alone (bob's wins, a
    forged one is 401 without falling back to the cookie), another scheme falls through to
    the cookie, and machine endpoints refuse the cookie. Forward-auth answers the same."""
    assert (await browser_login(web, "alice")).status_code == 302
    bob = idp.mint_access_token("bob")
    _, claims, _ = parts(bob)
    forged = with_payload(bob, {**claims, "sub": "x"})

    async def who(headers: dict[str, str]) -> object:
        r = await web.get("/auth/userinfo", headers=headers)
        return r.json()["username"] if r.status_code == 200 else r.status_code

    assert await who({}) == "alice"
    assert await who({"Authorization": f"Bearer {bob}"}) == "bob"
    assert await who({"Authorization": f"Bearer {forged}"}) == 401
    assert await who({"Authorization": "Basic YWxpY2U6eA=="}) == "alice"

    r = await web.get("/mfa/totp")
    assert r.status_code == 200  # the JSON MFA API accepts the session
    r = await web.post("/tokens/introspect", data={"token": bob})
    assert r.status_code == 401  # alice holds token-introspector, but only as a bearer
    alice = idp.mint_access_token("alice")
    r = await web.post(
        "/tokens/introspect", data={"token": bob}, headers={"Authorization": f"Bearer {alice}"}
    )
    assert r.status_code == 200 and r.json()["username"] == "bob"

    r = await web.get("/authz/forward-auth", headers={**FORWARD, "Authorization": f"Bearer {bob}"})
    assert r.status_code == 200 and r.headers["x-auth-user"] == "bob"
    r = await web.get("/authz/forward-auth", headers={**FORWARD, "Authorization": "Basic eDp5"})
    assert r.status_code == 200 and r.headers["x-auth-user"] == "alice"


@pytest.mark.parametrize("rd", HOSTILE)
async def test_hostile_return_urls_are_400_on_every_page(
    web: AsyncTestClient[Litestar], rd: str
) -> None:
    """Login, logout, the MFA prompt and setup pages (GET and POST) all apply the login's
    rule: each hostile ``rd`` is a 400 ``invalid_redirect``, never a 500 or a redirect."""
    r = await web.get("/auth/login", params={"rd": rd})
    assert r.status_code == 400 and r.json()["reason"] == "invalid_redirect"
    assert (await browser_login(web, "bob")).status_code == 302
    setup = await web.get("/auth/mfa/setup")
    assert setup.status_code == 200, setup.text
    found = re.search(r'name="csrf_token" value="([^"]+)"', setup.text)
    assert found is not None
    token = html.unescape(found[1])
    for path in ("/auth/mfa", "/auth/mfa/setup"):
        r = await web.get(path, params={"rd": rd})
        assert r.status_code == 400 and r.json()["reason"] == "invalid_redirect", path
        r = await web.post(path, data={"csrf_token": token, "code": "000000", "rd": rd})
        assert r.status_code == 400 and r.json()["reason"] == "invalid_redirect", path
    r = await web.get("/auth/logout", params={"rd": rd})
    assert r.status_code == 400 and r.json()["reason"] == "invalid_redirect"


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return html.unescape(found[1])


async def test_form_tokens_are_bound_to_the_session(web: AsyncTestClient[Litestar]) -> None:
    """The MFA form's token is the sign-out form's scheme: bound to the browser session, so a
    token from bob's session is refused (403) in alice's, and alice's own is accepted."""
    assert (await browser_login(web, "bob")).status_code == 302
    bobs = _csrf((await web.get("/auth/mfa/setup")).text)
    assert (await browser_login(web, "alice")).status_code == 302  # a new session cookie
    page = await web.get("/auth/mfa/setup")
    alices = _csrf(page.text)
    assert alices != bobs
    r = await web.post("/auth/mfa/setup", data={"csrf_token": bobs, "code": "000000"})
    assert r.status_code == 403 and "The form expired" in r.text
    r = await web.post("/auth/mfa/setup", data={"csrf_token": alices, "code": "000000"})
    assert r.status_code != 403 and "The form expired" not in r.text
    r = await web.get("/auth/logout/confirm")
    assert _csrf(r.text) == alices  # one token per session, whatever the form
