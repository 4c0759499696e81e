"""Replay protection (sequential, concurrent, across app instances) and clock skew."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from auth_service.config import Settings
from tests.integration.mfa.conftest import FakeClock, MfaApp, User, enroll, mfa_app, verify


async def test_same_code_twice_second_is_refused(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """A code accepted once is refused when presented again (``code_reused``)."""
    c, user = svc.client, make_user()
    await enroll(c, user, svc.clock)
    svc.clock.advance(30)
    code = user.code(svc.clock)
    assert (await verify(c, user, {"code": code})).status_code == 200
    again = await verify(c, user, {"code": code})
    assert again.status_code == 400 and again.json()["reason"] == "code_reused"


async def test_confirming_code_cannot_be_replayed_to_verify(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """The code that confirmed the enrollment has spent its step."""
    c, user = svc.client, make_user()
    await enroll(c, user, svc.clock)
    r = await verify(c, user, {"code": user.code(svc.clock)})
    assert r.status_code == 400 and r.json()["reason"] == "code_reused"


async def test_older_unused_code_refused_after_newer_accepted(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """After the next step's code was accepted, the current step's (unused) code is refused."""
    c, user = svc.client, make_user()
    await enroll(c, user, svc.clock)
    svc.clock.advance(60)
    assert (await verify(c, user, {"code": user.code(svc.clock, 1)})).status_code == 200
    r = await verify(c, user, {"code": user.code(svc.clock)})
    assert r.status_code == 400 and r.json()["reason"] == "code_reused"


async def test_concurrent_same_code_exactly_one_success_across_two_instances(
    idp_settings: Settings,
    clock: FakeClock,
    make_user: Callable[..., User],
) -> None:
    """Two app instances (own pools, own Redis clients, own event loops) receive the same
    valid code at once, 50 times: exactly one of each pair succeeds."""
    async with (
        mfa_app(idp_settings, clock) as a,
        mfa_app(idp_settings, clock) as b,
    ):
        user = make_user()
        await enroll(a.client, user, clock)
        for i in range(50):
            clock.advance(30)
            code = user.code(clock)
            ra, rb = await asyncio.gather(
                verify(a.client, user, {"code": code}), verify(b.client, user, {"code": code})
            )
            statuses = sorted([ra.status_code, rb.status_code])
            assert statuses == [200, 400], (i, ra.text, rb.text)
            loser = ra if ra.status_code == 400 else rb
            assert loser.json()["reason"] == "code_reused"


async def test_concurrent_same_code_within_one_instance(
    svc: MfaApp, make_user: Callable[..., User]
) -> None:
    """Ten simultaneous requests with one code on one instance: exactly one succeeds."""
    c, user = svc.client, make_user()
    await enroll(c, user, svc.clock)
    svc.clock.advance(30)
    code = user.code(svc.clock)
    results = await asyncio.gather(*(verify(c, user, {"code": code}) for _ in range(10)))
    assert sorted(r.status_code for r in results) == [200] + [400] * 9


@pytest.mark.parametrize(("steps", "accepted"), [(-1, True), (1, True), (-2, False), (2, False)])
async def test_skew_window_of_one_step(
    svc: MfaApp, make_user: Callable[..., User], steps: int, accepted: bool
) -> None:
    """With window 1 the previous and next step's codes are accepted; two steps away not."""
    c, user = svc.client, make_user()
    await enroll(c, user, svc.clock)
    svc.clock.advance(120)  # well past the confirming step
    r = await verify(c, user, {"code": user.code(svc.clock, steps)})
    if accepted:
        assert r.status_code == 200, r.text
    else:
        assert r.status_code == 400 and r.json()["reason"] == "invalid_code"
