"""``X-Auth-Assertion`` reused per identity through the app (CONTRACT §4).

Two different access tokens of one Keycloak session get the same assertion; the
moment the session passes TOTP the next request gets a new one carrying ``otp``;
another subject never gets it.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.integration.mfa.conftest import MfaApp, User, enroll, forward, verify
from tests.support.tokens import parts

PLAIN = "https://app.test/orders/1"  # signed in, no MFA needed


async def _assertion(svc: MfaApp, token: str) -> str:
    r = await forward(svc.client, token=token, url=PLAIN)
    assert r.status_code == 200, r.text
    return r.headers["x-auth-assertion"]


async def test_assertion_follows_the_identity_not_the_token(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """Same session, new token: same assertion. TOTP done: a new one with otp at once,
    again shared by the session's tokens. Another user: an assertion of their own."""
    user = make_user()
    second = user.idp.mint_access_token(user.username, sid=user.sid)
    assert second != user.token

    first = await _assertion(svc, user.token)
    assert await _assertion(svc, second) == first
    _, claims, _ = parts(first)
    assert claims["sub"] == user.sub and claims["amr"] == ["pwd"]

    await enroll(svc.client, user, svc.clock)
    svc.clock.advance(30)
    r = await verify(svc.client, user, {"code": user.code(svc.clock)})
    assert r.status_code == 200, r.text

    after = await _assertion(svc, second)
    assert after != first
    _, claims, _ = parts(after)
    assert claims["amr"] == ["pwd", "otp"] and claims["sid"] == user.sid
    assert await _assertion(svc, user.token) == after

    other = make_user()
    theirs = await _assertion(svc, other.token)
    assert theirs not in (first, after)
    _, claims, _ = parts(theirs)
    assert claims["sub"] == other.sub
