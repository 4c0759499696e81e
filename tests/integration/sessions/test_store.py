"""`SessionStore` on real Redis: timeouts, indexes, encryption at rest."""

from __future__ import annotations

import secrets

import pytest
from redis.asyncio import Redis

from auth_service.config import SecretKey
from auth_service.crypto import DecryptionError, SecretBox
from auth_service.sessions.store import IdPTokens, SessionStore, session_hash

TOKENS = IdPTokens(access_token="at-secret", refresh_token="rt-secret", id_token="idt")


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(redis_client: Redis, redis_prefix: str) -> tuple[SessionStore, Clock]:
    """A store with a 100 s idle and 1000 s absolute timeout and a settable clock."""
    clock = Clock()
    box = SecretBox([SecretKey("k1", secrets.token_bytes(32))])
    return (
        SessionStore(
            redis_client,
            box,
            prefix=f"{redis_prefix}store:{secrets.token_hex(4)}:",
            idle_timeout=100,
            absolute_timeout=1000,
            clock=clock,
        ),
        clock,
    )


async def test_idle_timeout_is_the_redis_ttl(
    store: tuple[SessionStore, Clock], redis_client: Redis
) -> None:
    """A session lives ``idle_timeout`` seconds in Redis, restarted by every load."""
    s, clock = store
    sid, _ = await s.create(sub="u1", sid="k-1", tokens=TOKENS, access_exp=clock.now + 300)
    assert 90 < await redis_client.ttl(s.key(sid)) <= 100
    await redis_client.expire(s.key(sid), 5)
    assert await s.load(sid) is not None
    assert 90 < await redis_client.ttl(s.key(sid)) <= 100


async def test_absolute_timeout_ends_an_active_session(store: tuple[SessionStore, Clock]) -> None:
    """Past its absolute deadline a session is gone however active it was."""
    s, clock = store
    sid, _ = await s.create(sub="u1", sid="k-1", tokens=TOKENS, access_exp=clock.now + 300)
    clock.now += 999
    assert await s.load(sid) is not None
    clock.now += 2
    assert await s.load(sid) is None
    assert await s.peek(sid) is None


async def test_tokens_are_encrypted_and_bound_to_the_session(
    store: tuple[SessionStore, Clock], redis_client: Redis
) -> None:
    """Redis never holds a token in clear, nor the cookie value; a blob moved to another
    session does not open."""
    s, clock = store
    sid, record = await s.create(sub="u1", sid="k-1", tokens=TOKENS, access_exp=clock.now + 300)
    raw = await redis_client.get(s.key(sid))
    assert raw is not None and b"at-secret" not in raw and b"rt-secret" not in raw
    assert sid not in s.key(sid) and session_hash(sid) in s.key(sid)
    assert s.open(sid, record) == TOKENS
    other, _ = await s.create(sub="u1", sid="k-1", tokens=TOKENS, access_exp=clock.now + 300)
    with pytest.raises(DecryptionError):
        s.open(other, record)


async def test_indexes_find_every_session_of_a_sid_and_a_sub(
    store: tuple[SessionStore, Clock],
) -> None:
    """Deleting by sid ends that sid's sessions only; deleting by sub ends all of the user's."""
    s, clock = store
    a, _ = await s.create(sub="u1", sid="k-1", tokens=TOKENS, access_exp=clock.now + 300)
    b, _ = await s.create(sub="u1", sid="k-1", tokens=TOKENS, access_exp=clock.now + 300)
    c, _ = await s.create(sub="u1", sid="k-2", tokens=TOKENS, access_exp=clock.now + 300)
    d, _ = await s.create(sub="u2", sid="k-3", tokens=TOKENS, access_exp=clock.now + 300)
    assert len(await s.delete_by_sid("k-1")) == 2
    assert await s.peek(a) is None and await s.peek(b) is None
    assert await s.peek(c) is not None
    assert [r.sid for r in await s.delete_by_sub("u1")] == ["k-2"]
    assert await s.peek(c) is None and await s.peek(d) is not None
    assert await s.delete_by_sid("k-1") == []


async def test_save_tokens_bumps_the_version_and_needs_the_session(
    store: tuple[SessionStore, Clock],
) -> None:
    """A refresh result is stored with ``version`` + 1, but never resurrects a deleted session."""
    s, clock = store
    sid, record = await s.create(sub="u1", sid=None, tokens=TOKENS, access_exp=clock.now + 30)
    saved = await s.save_tokens(sid, record, TOKENS, clock.now + 300)
    assert saved is not None and saved.version == 2 and saved.access_exp == clock.now + 300
    await s.delete(sid)
    assert await s.save_tokens(sid, saved, TOKENS, clock.now + 600) is None
    assert await s.peek(sid) is None
