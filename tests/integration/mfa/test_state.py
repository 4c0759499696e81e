"""`MfaState` on real Redis: propagation between workers, reload on (re)connect, expiry."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from auth_service.mfa.state import MfaState
from tests.conftest import REDIS_URL
from tests.integration.mfa.conftest import FakeClock
from tests.support.processes import eventually


@contextlib.asynccontextmanager
async def running(state: MfaState) -> AsyncIterator[MfaState]:
    stop = asyncio.Event()
    task = asyncio.create_task(state.run(stop))
    await eventually(state.synced.is_set, "MFA state synced")
    try:
        yield state
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_verification_reaches_other_workers_and_clear_removes_it(
    redis_prefix: str,
) -> None:
    """A sid marked on worker A is verified on worker B within moments; clear ends it on
    both; a worker started later loads the state present in Redis."""
    prefix = f"{redis_prefix}state{secrets.token_hex(3)}:"
    ra, rb, rc = (Redis.from_url(REDIS_URL) for _ in range(3))
    clock = FakeClock()
    a = MfaState(ra, prefix=prefix, clock=clock)
    b = MfaState(rb, prefix=prefix, clock=clock)
    async with running(a), running(b):
        await a.mark_verified("sid-1", 600, subject="s1")
        await a.mark_verified("sid-2", 600, subject="s1")
        await eventually(lambda: b.is_verified("sid-1") and b.is_verified("sid-2"), "on B")
        async with running(MfaState(rc, prefix=prefix, clock=clock)) as late:
            assert late.is_verified("sid-1")  # from the reload, no message needed
        await b.clear("sid-1")
        await eventually(lambda: not a.is_verified("sid-1"), "cleared on A")
        assert await a.clear_subject("s1") == 2
        await eventually(lambda: not b.is_verified("sid-2"), "subject cleared on B")
    for r in (ra, rb, rc):
        await r.aclose()


async def test_expiry_revocation_and_missing_sid(redis_prefix: str) -> None:
    """A verification ends at its TTL (by the clock), is void for a revoked sid, and a
    credential without sid is never verified."""
    prefix = f"{redis_prefix}state{secrets.token_hex(3)}:"
    redis = Redis.from_url(REDIS_URL)
    clock, revoked = FakeClock(), set[str]()
    state = MfaState(redis, prefix=prefix, revoked=revoked.__contains__, clock=clock)
    async with running(state):
        await state.mark_verified("sid-x", 60, subject="s")
        assert state.is_verified("sid-x") and not state.is_verified(None)
        revoked.add("sid-x")
        assert not state.is_verified("sid-x")
        revoked.clear()
        clock.advance(61)
        assert not state.is_verified("sid-x")
        ttl = await redis.ttl(f"{prefix}mfa:sid:sid-x")
        assert 0 < ttl <= 60
    await redis.aclose()
