"""The HTML pages: QR code matching the API, CSRF, security headers, no JavaScript."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from tests.integration.mfa.conftest import MfaApp, User
from tests.integration.mfa.qr import decode_svg_qr


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return html.unescape(found[1])


async def test_setup_page_qr_decodes_to_the_api_uri_then_confirms(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """The setup page shows the pending enrollment the API started: its inline SVG QR code
    decodes (zbar) to the API's ``otpauth://`` URI and the manual key is the secret; the
    form confirms and shows 10 recovery codes once."""
    c, user = svc.client, make_user()
    api = (await c.post("/mfa/totp/enrollment", headers=user.headers())).json()
    page = await c.get("/auth/mfa/setup", headers=user.headers())
    assert page.status_code == 200
    svg = re.search(r"<svg.*?</svg>", page.text, re.S)
    assert svg is not None
    assert decode_svg_qr(svg[0]) == [api["otpauth_uri"]]
    key = re.search(r'id="manual-key">([^<]+)<', page.text)
    assert key is not None and key[1].replace(" ", "") == api["secret"]
    assert decode_svg_qr(api["qr_svg"]) == [api["otpauth_uri"]]

    user.secret = api["secret"]
    r = await c.post(
        "/auth/mfa/setup",
        data={"csrf_token": _csrf(page.text), "code": user.code(svc.clock)},
        headers=user.headers(),
    )
    assert r.status_code == 200, r.text
    codes = re.findall(r"<li><code>([^<]+)</code></li>", r.text)
    assert len(codes) == 10
    status = (await c.get("/mfa/totp", headers=user.headers())).json()
    assert status["enrolled"] is True and status["recovery_codes_left"] == 10
    again = await c.get("/auth/mfa/setup", headers=user.headers())
    assert again.status_code == 409 and "<svg" not in again.text


async def test_pages_send_security_headers_and_no_script(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """CSP without scripts and with frame-ancestors 'none', no-store, no-referrer; the
    markup has no <script> and no inline event handlers."""
    c, user = svc.client, make_user()
    for path in ("/auth/mfa/setup", "/auth/mfa?rd=/x"):
        r = await c.get(path, headers=user.headers())
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "script-src" not in csp and "unsafe-inline" not in csp
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "<script" not in r.text.lower()
        assert not re.search(r"\son[a-z]+=", r.text)
        assert '<form method="post"' in r.text or "Set one up" in r.text


async def test_form_without_valid_csrf_is_refused(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """A POST without the token, with a forged one, or with another caller's token is 403,
    and a valid code in it is not spent."""
    c, user = svc.client, make_user()
    from tests.integration.mfa.conftest import enroll

    await enroll(c, user, svc.clock)
    page = await c.get("/auth/mfa", headers=user.headers())
    token = _csrf(page.text)
    other = make_user()
    other_page = await c.get("/auth/mfa/setup", headers=other.headers())
    svc.clock.advance(30)
    code = user.code(svc.clock)
    for bad in ("", token[:-2] + "xx", _csrf(other_page.text)):
        r = await c.post(
            "/auth/mfa",
            data={"csrf_token": bad, "code": code},
            headers=user.headers(),
            follow_redirects=False,
        )
        assert r.status_code == 403, bad
    assert not svc.services.mfa_state.is_verified(user.sid)
    r = await c.post(
        "/auth/mfa",
        data={"csrf_token": token, "code": code},
        headers=user.headers(),
        follow_redirects=False,
    )
    assert r.status_code == 303  # the code was not spent by the refused attempts


async def test_prompt_redirect_is_limited_to_allowed_hosts(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """After success the form redirects to ``rd`` when it is relative or on an allowed host;
    any other ``rd`` is a 400 before the code is checked (the code stays usable). Wrong codes
    re-render the form (400)."""
    c, user = svc.client, make_user()
    from tests.integration.mfa.conftest import enroll

    await enroll(c, user, svc.clock)
    page = await c.get("/auth/mfa", headers=user.headers())
    r = await c.post(
        "/auth/mfa",
        data={"csrf_token": _csrf(page.text), "code": "000000", "rd": "/x"},
        headers={**user.headers(), "Accept": "text/html,*/*;q=0.8"},
        follow_redirects=False,
    )
    assert r.status_code == 400 and 'role="alert"' in r.text  # a browser gets the form back
    assert "4 attempts left before a pause." in r.text
    r = await c.post(
        "/auth/mfa",
        data={"csrf_token": _csrf(page.text), "code": "000001", "rd": "/x"},
        headers=user.headers(),
        follow_redirects=False,
    )  # any other client gets the problem document
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"] == "That code is not valid. 3 attempts left before a pause."
    svc.clock.advance(30)
    code = user.code(svc.clock)
    r = await c.post(
        "/auth/mfa",
        data={"csrf_token": _csrf(page.text), "code": code, "rd": "https://evil.test/"},
        headers=user.headers(),
        follow_redirects=False,
    )
    assert r.status_code == 400 and r.json()["reason"] == "invalid_redirect"
    assert not svc.services.mfa_state.is_verified(user.sid)
    r = await c.post(
        "/auth/mfa",
        data={"csrf_token": _csrf(page.text), "code": code, "rd": "https://app.test/x"},
        headers=user.headers(),
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "https://app.test/x"


async def test_unauthenticated_browser_is_sent_to_login(svc: MfaApp) -> None:
    """Without credentials the page redirects to /auth/login with itself as ``rd``."""
    r = await svc.client.get("/auth/mfa?rd=/pay", follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"].startswith(
        "http://auth.test/auth/login?rd=http%3A%2F%2Fauth.test%2Fauth%2Fmfa"
    )


async def test_browser_denied_by_a_rule_gets_the_html_page_from_forward_auth(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """A signed-in browser refused by a rule (app-user on ``/admin/**``) gets the HTML 403
    page in the forward-auth answer (Traefik/Caddy/Envoy pass the body on); an API client
    with the same identity keeps problem+json; nginx's dialect never carries HTML."""
    c, user = svc.client, make_user()
    name, session = await svc.login(user)
    browser = {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "app.test",
        "X-Forwarded-Uri": "/admin/users",
        "Accept": "text/html,application/xhtml+xml",
        "Cookie": f"{name}={session}",
        "X-Request-ID": "rid-fa-denied",
    }
    r = await c.get("/authz/forward-auth", headers=browser)
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert '<code id="request-id">rid-fa-denied</code>' in r.text
    assert "style-src 'self'" in r.headers["content-security-policy"]
    assert r.headers.get_list("cache-control") == ["no-store"]
    again = await c.get("/authz/forward-auth", headers=browser)
    assert again.status_code == 403 and again.headers.get_list("cache-control") == ["no-store"]
    envoy = await c.get(
        "/authz/ext-authz/admin/users",
        headers={"Host": "app.test", "Accept": "text/html", "Cookie": f"{name}={session}"},
    )
    assert envoy.status_code == 403 and envoy.headers["content-type"].startswith("text/html")
    api = await c.get("/authz/forward-auth", headers={**browser, "Accept": "application/json"})
    assert api.status_code == 403
    assert api.headers["content-type"].startswith("application/problem+json")
    nginx = await c.get(
        "/authz/auth-request",
        headers={
            "X-Original-URL": "https://app.test/admin/users",
            "X-Original-Method": "GET",
            "Accept": "text/html",
            "Cookie": f"{name}={session}",
        },
    )
    assert nginx.status_code == 403
    assert nginx.headers["content-type"].startswith("application/problem+json")
