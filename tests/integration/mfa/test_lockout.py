"""Failure counting and lockout: 429 with Retry-After, expiry, reset on success, shared count."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from auth_service.config import Settings
from tests.integration.mfa.conftest import FakeClock, MfaApp, User, enroll, mfa_app, verify

WRONG = {"code": "000000"}


def _wrong_for(user: User, clock: FakeClock) -> dict[str, str]:
    """A code that is wrong for every step of the window (000000 could, rarely, be right)."""
    valid = {user.code(clock, s) for s in (-1, 0, 1)}
    code = next(f"{n:06d}" for n in range(1000) if f"{n:06d}" not in valid)
    return {"code": code}


async def test_five_wrong_codes_lock_with_retry_after_until_it_expires(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """Four wrong codes are 400; the fifth locks (429, Retry-After 900); while locked even a
    valid code is 429 and not spent; after the lock time the valid code is accepted."""
    c, user = svc.client, make_user()
    await enroll(c, user, svc.clock)
    svc.clock.advance(30)
    for _ in range(4):
        r = await verify(c, user, _wrong_for(user, svc.clock))
        assert r.status_code == 400 and r.json()["reason"] == "invalid_code"
    r = await verify(c, user, _wrong_for(user, svc.clock))
    assert r.status_code == 429 and r.json()["reason"] == "mfa_locked"
    assert r.headers["retry-after"] == "900"
    metrics = (await c.get("/metrics")).text
    assert "auth_mfa_failures_total 5.0" in metrics
    assert "auth_mfa_lockouts_total 1.0" in metrics
    good = {"code": user.code(svc.clock)}
    r = await verify(c, user, good)
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 900
    svc.clock.advance(899)
    assert (await verify(c, user, {"code": user.code(svc.clock)})).status_code == 429
    svc.clock.advance(2)
    r = await verify(c, user, {"code": user.code(svc.clock)})
    assert r.status_code == 200, r.text


async def test_success_resets_the_count(svc: MfaApp, make_user: Callable[..., User]) -> None:
    """4 failures, a success, 4 failures: never locked."""
    c, user = svc.client, make_user()
    await enroll(c, user, svc.clock)
    for _ in range(2):
        svc.clock.advance(30)
        for _ in range(4):
            assert (await verify(c, user, _wrong_for(user, svc.clock))).status_code == 400
        assert (await verify(c, user, {"code": user.code(svc.clock)})).status_code == 200


async def test_recovery_code_failures_count_too(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """Wrong recovery codes share the user's counter."""
    c, user = svc.client, make_user()
    await enroll(c, user, svc.clock)
    for _ in range(4):
        r = await verify(c, user, {"recovery_code": "aaaaa-aaaaa"})
        assert r.status_code == 400
    assert (await verify(c, user, _wrong_for(user, svc.clock))).status_code == 429


async def test_count_is_shared_by_instances(
    idp_settings: Settings,
    clock: FakeClock,
    make_user: Callable[..., User],
) -> None:
    """Two failures on one instance and three on another lock the user on both."""
    async with (
        mfa_app(idp_settings, clock) as a,
        mfa_app(idp_settings, clock) as b,
    ):
        user = make_user()
        await enroll(a.client, user, clock)
        for client in (a.client, a.client, b.client, b.client):
            assert (await verify(client, user, _wrong_for(user, clock))).status_code == 400
        assert (await verify(b.client, user, _wrong_for(user, clock))).status_code == 429
        clock.advance(30)
        assert (await verify(a.client, user, {"code": user.code(clock)})).status_code == 429


async def test_per_ip_limit_spans_users(
    idp_settings: Settings, clock: FakeClock, make_user: Callable[..., User]
) -> None:
    """One source address failing for many users is locked by the per-IP counter
    (``AUTH_MFA_IP_MAX_FAILURES=6``)."""
    settings = msgspec.structs.replace(idp_settings, mfa_ip_max_failures=6)
    async with mfa_app(settings, clock) as svc:
        c = svc.client
        users = [make_user() for _ in range(3)]
        for u in users:
            u.ip = users[0].ip
            await enroll(c, u, svc.clock)
        statuses = []
        for u in users * 2:
            statuses.append((await verify(c, u, _wrong_for(u, svc.clock))).status_code)
        assert statuses == [400] * 5 + [429]
        fresh = make_user()
        fresh.ip = users[0].ip
        r = await c.post("/mfa/totp/enrollment", headers=fresh.headers())
        assert r.status_code == 201
        r = await c.post(
            "/mfa/totp/enrollment/confirm", json={"code": "123456"}, headers=fresh.headers()
        )
        assert r.status_code == 429
