"""Enroll → confirm → verify → forward-auth on a `require_mfa` rule, by bearer and by session."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from redis.asyncio import Redis

from auth_service.forward_auth.decision import MFA_CHALLENGE
from tests.integration.mfa.conftest import (
    PAYMENTS,
    MfaApp,
    User,
    enroll,
    forward,
    verify,
)
from tests.support.processes import eventually
from tests.support.tokens import parts


async def test_bearer_flow_challenges_then_allows_with_totp(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """Before verifying, an API request gets the RFC 9470 401; after, 200 with totp and amr otp.

    A second token of the same Keycloak session (same sid) counts as verified too;
    a token of another session of the same user does not.
    """
    c, user = svc.client, make_user()
    await enroll(c, user, svc.clock)

    before = await forward(c, token=user.token)
    assert before.status_code == 401
    assert before.headers["www-authenticate"] == MFA_CHALLENGE
    assert before.json()["reason"] == "mfa_required"

    svc.clock.advance(30)
    r = await verify(c, user, {"code": user.code(svc.clock)})
    assert r.status_code == 200, r.text
    assert r.json()["mfa"] == "totp"
    assert "expires_at" in r.json()

    after = await forward(c, token=user.token)
    assert after.status_code == 200, after.text
    assert after.headers["x-auth-mfa"] == "totp"
    _, claims, _ = parts(after.headers["x-auth-assertion"])
    assert "otp" in claims["amr"] and claims["sid"] == user.sid

    same_sid = user.idp.mint_access_token(user.username, sid=user.sid)
    assert same_sid != user.token
    r = await forward(c, token=same_sid)
    assert r.status_code == 200 and r.headers["x-auth-mfa"] == "totp"

    other_session = user.idp.mint_access_token(user.username)
    r = await forward(c, token=other_session)
    assert r.status_code == 401 and r.headers["www-authenticate"] == MFA_CHALLENGE

    plain = await forward(c, token=user.token, url="https://app.test/orders/1")
    assert plain.status_code == 200 and plain.headers["x-auth-mfa"] == "totp"


async def test_browser_session_redirected_to_mfa_page_then_allowed(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """A browser on a `require_mfa` rule is redirected to /auth/mfa?rd=...; the page's form
    verifies the session's sid; then the browser and bearer tokens of that sid pass.

    The session is created in the real session store (Redis), as the login callback does.
    """
    c, user = svc.client, make_user()
    await enroll(c, user, svc.clock)
    cookie, session_id = await svc.login(user)
    c.cookies.set(cookie, session_id, domain="auth.test")

    r = await forward(c, browser=True)
    assert r.status_code == 302
    assert r.headers["location"] == f"http://auth.test/auth/mfa?rd={quote(PAYMENTS, safe='')}"

    page = await c.get(f"/auth/mfa?rd={quote(PAYMENTS, safe='')}")  # by session cookie
    assert page.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    svc.clock.advance(30)
    r = await c.post(
        "/auth/mfa",
        data={"csrf_token": csrf[1], "rd": PAYMENTS, "code": user.code(svc.clock)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == PAYMENTS

    r = await forward(c, browser=True)
    assert r.status_code == 200 and r.headers["x-auth-mfa"] == "totp"
    _, claims, _ = parts(r.headers["x-auth-assertion"])
    assert "otp" in claims["amr"]
    c.cookies.clear()
    r = await forward(c, token=user.token)  # a bearer token of the same sid
    assert r.status_code == 200 and r.headers["x-auth-mfa"] == "totp"


async def test_verified_sid_ends_with_revocation_and_logout(
    svc: MfaApp, make_user: Callable[..., User], redis_client: Redis
) -> None:
    """Back-channel logout (sid revoked) and a logout clearing ``mfa:sid:<sid>`` on another
    worker both end the MFA state of that sid on this worker."""
    c = svc.client
    admin = make_user(roles=("auth-admin",))
    for end in ("revoke", "clear"):
        user = make_user()
        await enroll(c, user, svc.clock)
        svc.clock.advance(30)
        assert (await verify(c, user, {"code": user.code(svc.clock)})).status_code == 200
        mfa = svc.services.mfa_state
        assert mfa.is_verified(user.sid)
        if end == "revoke":
            r = await c.post("/admin/revocations", json={"sid": user.sid}, headers=admin.headers())
            assert r.status_code == 204, r.text
        else:
            prefix = svc.res.settings.redis_prefix
            await redis_client.delete(f"{prefix}mfa:sid:{user.sid}")
            await redis_client.publish(f"{prefix}mfa", f"-{user.sid}")
        await eventually(lambda u=user: not mfa.is_verified(u.sid), f"sid ended by {end}")
        fresh = user.idp.mint_access_token(user.username, sid=user.sid)
        r = await forward(c, token=fresh)
        assert r.status_code == 401


async def test_status_enrollment_conflict_and_disable(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """Status follows the lifecycle; enrolling twice is 409; a new enrollment replaces a
    pending one; disabling needs a valid code and ends the sid's MFA state."""
    c, user = svc.client, make_user()
    r = await c.get("/mfa/totp", headers=user.headers())
    assert r.json() == {"enrolled": False, "confirmed_at": None, "recovery_codes_left": 0}
    assert r.headers["cache-control"] == "no-store"

    first = (await c.post("/mfa/totp/enrollment", headers=user.headers())).json()
    second = (await c.post("/mfa/totp/enrollment", headers=user.headers())).json()
    assert first["secret"] != second["secret"]
    assert len(second["secret"]) >= 32  # base32 of >= 160 bits
    assert second["otpauth_uri"].startswith("otpauth://totp/")
    assert second["qr_svg"].startswith("<svg")
    user.secret = first["secret"]  # the replaced secret no longer confirms
    r = await c.post(
        "/mfa/totp/enrollment/confirm", json={"code": user.code(svc.clock)}, headers=user.headers()
    )
    assert r.status_code == 400 and r.json()["reason"] == "invalid_code"

    await enroll(c, user, svc.clock)
    r = await c.get("/mfa/totp", headers=user.headers())
    body = r.json()
    assert body["enrolled"] is True and body["recovery_codes_left"] == 10
    assert body["confirmed_at"] is not None
    r = await c.post("/mfa/totp/enrollment", headers=user.headers())
    assert r.status_code == 409 and r.json()["reason"] == "already_enrolled"

    svc.clock.advance(30)
    assert (await verify(c, user, {"code": user.code(svc.clock)})).status_code == 200
    r = await c.request("DELETE", "/mfa/totp", json={"code": "000000"}, headers=user.headers())
    assert r.status_code == 400 and r.json()["reason"] == "invalid_code"
    svc.clock.advance(30)
    r = await c.request(
        "DELETE", "/mfa/totp", json={"code": user.code(svc.clock)}, headers=user.headers()
    )
    assert r.status_code == 204, r.text
    assert (await c.get("/mfa/totp", headers=user.headers())).json()["enrolled"] is False
    assert not svc.services.mfa_state.is_verified(user.sid)


async def test_unauthenticated_and_sidless_callers_are_refused(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """No credentials → 401 with a Bearer challenge; verify without a sid → 400 no_session."""
    c = svc.client
    r = await c.get("/mfa/totp")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    user = make_user()
    await enroll(c, user, svc.clock)
    no_sid = user.idp.mint_access_token(user.username, extra_claims={"sid": None})
    svc.clock.advance(30)
    r = await verify(c, user, {"code": user.code(svc.clock)}, token=no_sid)
    assert r.status_code == 400 and r.json()["reason"] == "no_session"


async def test_session_callers_must_send_json(svc: MfaApp, make_user: Callable[..., User]) -> None:
    """A cookie-authenticated state change that is not application/json (what a cross-site
    form could send) is refused; the same request as JSON works."""
    c, user = svc.client, make_user()
    cookie, session_id = await svc.login(user)
    c.cookies.set(cookie, session_id, domain="auth.test")
    r = await c.post(
        "/mfa/totp/enrollment",
        content=b"x=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400 and r.json()["reason"] == "unsupported_media_type"
    r = await c.post("/mfa/totp/enrollment", json={})
    assert r.status_code == 201, r.text
    assert (await c.get("/mfa/totp")).json()["enrolled"] is False
