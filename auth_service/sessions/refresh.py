"""Refreshing a session's access token once, across every worker and instance.

When many requests of one session arrive as its access token nears expiry,
exactly one of them talks to the IdP:

* **within a worker**, concurrent callers share one `asyncio.Task` per session;
* **across workers**, that task first takes a Redis lock
  (``SET <prefix>refresh-lock:<h> <random> NX PX <lease>``). The winner
  re-reads the session (a refresh may just have finished elsewhere), calls the
  token endpoint with the refresh token, stores the rotated tokens (re-encrypted
  under the first secret key, ``version`` + 1) and releases the lock with a Lua
  compare-and-delete, so it can never delete a lock it no longer owns;
* **losers** poll the session record (bounded wait) until its ``version``
  changes and reuse the result; they never call the IdP themselves unless the
  lock disappears without a new version (the winner died), in which case they
  compete for it again.

The lease is *safely bounded* rather than renewed: the IdP call is cancelled
after ``call_timeout``, which is shorter than the lease, so the lock cannot
expire while its owner is still refreshing.

A refresh the IdP refuses (``invalid_grant``: session ended, token reused or
expired) ends the session. An IdP that cannot be reached leaves the session
alone: the current access token is used while it is still valid, after that
the caller gets `DependencyUnavailable` (503).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable

import structlog
from redis.asyncio import Redis

from auth_service.sessions.store import IdPTokens, SessionRecord, SessionStore, session_hash

__all__ = (
    "RedisLock",
    "RefreshRefused",
    "RefreshUnavailable",
    "SessionGone",
    "SessionRefresher",
    "TokenRefresh",
)

log = structlog.get_logger("auth_service.sessions")

TokenRefresh = Callable[[str], Awaitable[tuple[IdPTokens, float]]]
"""Calls the token endpoint with a refresh token; returns the new tokens and access expiry."""

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RefreshRefused(Exception):
    """The IdP refused the refresh token (the session must end); ``reason`` says why."""

    def __init__(self, reason: str, description: str = "") -> None:
        super().__init__(description or reason)
        self.reason = reason


class RefreshUnavailable(Exception):
    """The IdP could not be asked (network error, timeout, 5xx)."""


class SessionGone(Exception):
    """The session ended while it was being refreshed."""


class RedisLock:
    """A lease lock in Redis: ``SET NX PX`` to take, Lua compare-and-delete to release."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, name: str, lease: float) -> str | None:
        """The owner token if the lock was free, else ``None``."""
        token = secrets.token_hex(16)
        taken = await self.redis.set(name, token, nx=True, px=max(1, int(lease * 1000)))
        return token if taken else None

    async def release(self, name: str, token: str) -> bool:
        """Delete the lock if ``token`` still owns it."""
        return bool(await self._release(keys=[name], args=[token]))

    async def held(self, name: str) -> bool:
        """Whether anyone holds the lock."""
        return bool(await self.redis.exists(name))


class SessionRefresher:
    """Refreshes sessions once per session across workers; see the module docstring."""

    def __init__(
        self,
        store: SessionStore,
        refresh_tokens: TokenRefresh,
        *,
        call_timeout: float,
        poll_interval: float = 0.02,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.lock = RedisLock(store.redis)
        self.refresh_tokens = refresh_tokens
        self.call_timeout = call_timeout
        self.lease = 2 * call_timeout + 1.0
        """Lock lease: the IdP call is abandoned well before it runs out."""
        self.wait = self.lease + 1.0
        """Longest time a waiter polls for another worker's result."""
        self.poll_interval = poll_interval
        self._clock = clock
        self._inflight: dict[str, asyncio.Task[SessionRecord]] = {}

    def _lock_name(self, session_id: str) -> str:
        return f"{self.store.prefix}refresh-lock:{session_hash(session_id)}"

    async def refresh(self, session_id: str, record: SessionRecord) -> SessionRecord:
        """The session with a fresh access token (or the current one while it is still valid).

        Raises:
            RefreshRefused: the IdP refused; the session has been deleted.
            RefreshUnavailable: the IdP is unreachable and the access token has expired.
            SessionGone: the session ended meanwhile.
            RedisError: Redis is unreachable.
        """
        h = session_hash(session_id)
        task = self._inflight.get(h)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._refresh(session_id, record))
            self._inflight[h] = task
            task.add_done_callback(lambda _: self._inflight.pop(h, None))
        return await asyncio.shield(task)

    async def _refresh(self, session_id: str, record: SessionRecord) -> SessionRecord:
        name = self._lock_name(session_id)
        deadline = time.monotonic() + self.wait
        while True:
            token = await self.lock.acquire(name, self.lease)
            if token is not None:
                try:
                    return await self._as_owner(session_id, record)
                finally:
                    await self.lock.release(name, token)
            current = await self._await_other(session_id, record, name, deadline)
            if current is not None:
                return current
            # The lock vanished without a new version: its owner gave up; compete again.

    async def _as_owner(self, session_id: str, record: SessionRecord) -> SessionRecord:
        current = await self.store.peek(session_id)
        if current is None:
            raise SessionGone
        if current.version != record.version:
            return current  # refreshed elsewhere between our read and the lock
        tokens = self.store.open(session_id, current)
        if not tokens.refresh_token:
            await self.store.delete(session_id)
            raise RefreshRefused("no_refresh_token", "session has no refresh token")
        try:
            fresh, access_exp = await asyncio.wait_for(
                self.refresh_tokens(tokens.refresh_token), timeout=self.call_timeout
            )
        except RefreshRefused:
            await self.store.delete(session_id)
            raise
        except (RefreshUnavailable, TimeoutError) as exc:
            if current.access_exp > self._clock():
                log.warning("session_refresh_deferred", error=exc.__class__.__name__)
                return current
            raise RefreshUnavailable("identity provider unavailable") from exc
        if fresh.id_token is None and tokens.id_token is not None:
            fresh = IdPTokens(
                access_token=fresh.access_token,
                refresh_token=fresh.refresh_token or tokens.refresh_token,
                id_token=tokens.id_token,
            )
        saved = await self.store.save_tokens(session_id, current, fresh, access_exp)
        if saved is None:
            raise SessionGone
        return saved

    async def _await_other(
        self, session_id: str, record: SessionRecord, name: str, deadline: float
    ) -> SessionRecord | None:
        """Poll for another worker's refresh; ``None`` when its lock disappeared without one."""
        while True:
            current = await self.store.peek(session_id)
            if current is None:
                raise SessionGone
            if current.version != record.version:
                return current
            if not await self.lock.held(name):
                # Re-read once: the owner saves before it releases.
                current = await self.store.peek(session_id)
                if current is None:
                    raise SessionGone
                if current.version != record.version:
                    return current
                return None
            if time.monotonic() > deadline:
                if current.access_exp > self._clock():
                    return current
                raise RefreshUnavailable("timed out waiting for another worker's refresh")
            await asyncio.sleep(self.poll_interval)
