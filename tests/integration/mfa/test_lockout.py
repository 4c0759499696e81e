"""Failure counting and lockout: 429 with Retry-After, expiry, reset on success, shared count.

CONTRACT §6: the 5th wrong code is answered ``invalid_code`` like any other; the 6th
attempt gets 429. Counts live in the real Redis of the run.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

import msgspec
import pytest
from redis.asyncio import Redis

from auth_service.config import Settings
from auth_service.mfa.lockout import Limits, Lockout, Refused
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
    """Wrong codes 1..5 are 400 ``invalid_code`` (the fifth sets the lock); the 6th attempt,
    even with a valid code, is 429 with Retry-After 900 and the code is not spent; after the
    lock time the valid code is accepted."""
    c, user = svc.client, make_user()
    await enroll(c, user, svc.clock)
    svc.clock.advance(30)
    for _ in range(5):
        r = await verify(c, user, _wrong_for(user, svc.clock))
        assert r.status_code == 400 and r.json()["reason"] == "invalid_code"
        assert "retry-after" not in r.headers
    metrics = (await c.get("/metrics")).text
    assert "auth_mfa_failures_total 5.0" in metrics
    assert "auth_mfa_lockouts_total 1.0" in metrics
    good = {"code": user.code(svc.clock)}
    r = await verify(c, user, good)
    assert r.status_code == 429 and r.json()["reason"] == "mfa_locked"
    assert r.headers["retry-after"] == "900"
    svc.clock.advance(100)
    r = await verify(c, user, good)
    assert r.status_code == 429 and r.headers["retry-after"] == "800"
    assert "auth_mfa_failures_total 5.0" in (await c.get("/metrics")).text
    svc.clock.advance(799)
    assert (await verify(c, user, {"code": user.code(svc.clock)})).status_code == 429
    svc.clock.advance(2)
    r = await verify(c, user, {"code": user.code(svc.clock)})
    assert r.status_code == 200, r.text


async def test_success_resets_the_count(svc: MfaApp, make_user: Callable[..., User]) -> None:
    """4 failures, a success, 4 failures, a success: never locked; after the second success
    five more wrong codes are all answered 400 and only the sixth attempt is 429."""
    c, user = svc.client, make_user()
    await enroll(c, user, svc.clock)
    for _ in range(2):
        svc.clock.advance(30)
        for _ in range(4):
            assert (await verify(c, user, _wrong_for(user, svc.clock))).status_code == 400
        assert (await verify(c, user, {"code": user.code(svc.clock)})).status_code == 200
    statuses = [(await verify(c, user, _wrong_for(user, svc.clock))).status_code for _ in range(6)]
    assert statuses == [400] * 5 + [429]


async def test_attempts_whose_code_is_not_judged_do_not_count(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """A reused valid code (double submit) and a request for a user without TOTP give their
    slot back: four failures and any number of those still leave the fifth wrong code a 400."""
    c, user = svc.client, make_user()
    await enroll(c, user, svc.clock)
    svc.clock.advance(30)
    code = {"code": user.code(svc.clock)}
    assert (await verify(c, user, code)).status_code == 200
    for _ in range(4):
        assert (await verify(c, user, _wrong_for(user, svc.clock))).status_code == 400
    for _ in range(3):
        r = await verify(c, user, code)
        assert r.status_code == 400 and r.json()["reason"] == "code_reused"
    r = await verify(c, user, _wrong_for(user, svc.clock))
    assert r.status_code == 400 and r.json()["reason"] == "invalid_code"
    assert (await verify(c, user, _wrong_for(user, svc.clock))).status_code == 429
    stranger = make_user()
    for _ in range(7):
        r = await verify(c, stranger, {"code": "123456"})
        assert r.status_code == 404 and r.json()["reason"] == "not_enrolled"


async def test_recovery_code_failures_count_too(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """Wrong recovery codes share the user's counter: four of them and a wrong TOTP code are
    400, the next attempt (a recovery code) is 429."""
    c, user = svc.client, make_user()
    await enroll(c, user, svc.clock)
    for _ in range(4):
        r = await verify(c, user, {"recovery_code": "aaaaa-aaaaa"})
        assert r.status_code == 400
    assert (await verify(c, user, _wrong_for(user, svc.clock))).status_code == 400
    assert (await verify(c, user, {"recovery_code": "aaaaa-aaaaa"})).status_code == 429


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
        for client in (a.client, a.client, b.client, b.client, b.client):
            assert (await verify(client, user, _wrong_for(user, clock))).status_code == 400
        assert (await verify(a.client, user, _wrong_for(user, clock))).status_code == 429
        clock.advance(30)
        assert (await verify(a.client, user, {"code": user.code(clock)})).status_code == 429


async def test_per_ip_limit_spans_users(
    idp_settings: Settings,
    clock: FakeClock,
    make_user: Callable[..., User],
) -> None:
    """One source address failing for many users is locked by the per-IP counter
    (``AUTH_MFA_IP_MAX_FAILURES=6``): six wrong codes over three users are 400, then the
    address gets 429, even for a fresh user confirming an enrollment."""
    settings = msgspec.structs.replace(idp_settings, mfa_ip_max_failures=6)
    async with mfa_app(settings, clock) as svc:
        c = svc.client
        users = [make_user() for _ in range(3)]
        for u in users:
            u.ip = users[0].ip
            await enroll(c, u, svc.clock)
        statuses = []
        for u in users * 2 + users[:1]:
            statuses.append((await verify(c, u, _wrong_for(u, svc.clock))).status_code)
        assert statuses == [400] * 6 + [429]
        fresh = make_user()
        fresh.ip = users[0].ip
        r = await c.post("/mfa/totp/enrollment", headers=fresh.headers())
        assert r.status_code == 201
        r = await c.post(
            "/mfa/totp/enrollment/confirm", json={"code": "123456"}, headers=fresh.headers()
        )
        assert r.status_code == 429


async def test_reservation_is_atomic_on_real_redis(redis_client: Redis, redis_prefix: str) -> None:
    """`Lockout` alone: of 100 simultaneous reservations exactly 5 get a slot, the others are
    refused (no lock yet: Retry-After is the lock length); a slot given back can be taken
    again; five failures set the lock, which refuses until the clock passes its end."""
    clock = FakeClock()
    lockout = Lockout(
        redis_client,
        prefix=f"{redis_prefix}unit:{secrets.token_hex(4)}:",
        user=Limits(5, 900, 900),
        ip=Limits(50, 900, 900),
        clock=clock,
    )

    async def reserve() -> int | Refused:
        try:
            return await lockout.reserve("alice", None)
        except Refused as exc:
            return exc

    results = await asyncio.gather(*(reserve() for _ in range(100)))
    taken = sorted(r for r in results if isinstance(r, int))
    refused = [r for r in results if isinstance(r, Refused)]
    assert taken == [1, 2, 3, 4, 5]
    assert len(refused) == 95
    assert all(not r.locked and r.retry_after == 900 for r in refused)
    await lockout.release("alice")
    assert await lockout.reserve("alice", None) == 5
    for expected in (1, 2, 3, 4):
        assert await lockout.failed("alice", None) == (expected, 0)
    assert await lockout.failed("alice", None) == (5, 900)
    with pytest.raises(Refused) as locked:
        await lockout.reserve("alice", None)
    assert locked.value.locked and locked.value.retry_after == 900
    clock.advance(901)
    assert await lockout.reserve("alice", None) == 1
    await lockout.success("alice")
    assert await lockout.reserve("alice", None) == 1
