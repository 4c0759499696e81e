"""Which Keycloak sessions (``sid``) passed TOTP: Redis, mirrored in memory per worker.

The same pattern as `auth_service.tokens.revocation`: Redis is the source of
truth, every worker keeps a copy so the forward-auth hot path (`is_verified`)
does no I/O:

* `mark_verified` writes ``mfa:sid:<sid>`` (value: expiry time, TTL to match)
  and publishes ``+<sid> <expiry>`` on the ``mfa`` channel; `clear` deletes the
  key and publishes ``-<sid>``; every worker's subscriber applies the message;
* on start and after every reconnect the worker subscribes first, then reloads
  every key with SCAN, so nothing published while it was away is lost.

State is keyed by ``sid`` alone, so the browser session and every bearer token
of that Keycloak session count as verified. A revoked sid (back-channel logout,
admin revoke: `auth_service.tokens.revocation`) is never verified, even before
`clear` runs; logout code should still call `clear`. ``mfa:sub:<sub>`` lists a
subject's verified sids so disabling TOTP or an admin reset can end them all.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from redis.asyncio import Redis

from auth_service.stores.redis_mirror import RedisMirror

__all__ = ("MfaState",)

log = structlog.get_logger("auth_service.mfa.state")


class MfaState(RedisMirror):
    """MFA-verified sids; implements `auth_service.forward_auth.endpoint.MfaStatus`.

    Args:
        redis: the worker's client; prefix: ``settings.redis_prefix``.
        revoked: whether a sid was revoked (``Revocations.is_revoked(sid, None)``).
        clock: seconds since the epoch.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        revoked: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(redis, f"{prefix}mfa", name="mfa_state")
        self.prefix = f"{prefix}mfa:"
        self.revoked = revoked
        self.clock = clock
        self._verified: dict[str, float] = {}  # sid -> expiry (clock time)

    def __len__(self) -> int:
        return len(self._verified)

    def is_verified(self, sid: str | None) -> bool:
        """Whether ``sid`` passed TOTP and has not expired or been revoked; in memory."""
        if sid is None:
            return False
        expiry = self._verified.get(sid)
        if expiry is None or expiry <= self.clock():
            return False
        return self.revoked is None or not self.revoked(sid)

    async def mark_verified(self, sid: str, ttl: int, *, subject: str) -> float:
        """Mark ``sid`` verified for ``ttl`` seconds on every worker; returns the expiry."""
        expiry = self.clock() + ttl
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{self.prefix}sid:{sid}", repr(expiry), ex=ttl)
            pipe.sadd(f"{self.prefix}sub:{subject}", sid)
            pipe.expire(f"{self.prefix}sub:{subject}", ttl)
            pipe.publish(self.channel, f"+{sid} {expiry!r}")
            await pipe.execute()
        self._verified[sid] = expiry
        return expiry

    async def clear(self, sid: str) -> None:
        """Forget ``sid`` on every worker (logout)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(f"{self.prefix}sid:{sid}")
            pipe.publish(self.channel, f"-{sid}")
            await pipe.execute()
        self._verified.pop(sid, None)

    async def clear_subject(self, subject: str) -> int:
        """Forget every verified sid of ``subject`` (TOTP disabled or reset); returns how many."""
        key = f"{self.prefix}sub:{subject}"
        sids = [
            s.decode() if isinstance(s, bytes) else str(s) for s in await self.redis.smembers(key)
        ]
        for sid in sids:
            await self.clear(sid)
        await self.redis.delete(key)
        return len(sids)

    def _apply(self, message: str) -> None:
        if message.startswith("+"):
            sid, _, expiry = message[1:].partition(" ")
            try:
                self._verified[sid] = float(expiry)
            except ValueError:
                log.warning("mfa_state_bad_message")
        elif message.startswith("-"):
            self._verified.pop(message[1:], None)

    def prune(self) -> None:
        """Forget expired entries."""
        now = self.clock()
        for sid in [s for s, exp in self._verified.items() if exp <= now]:
            del self._verified[sid]

    async def _reload(self) -> None:
        pattern = f"{self.prefix}sid:*"
        start = len(f"{self.prefix}sid:")
        fresh: dict[str, float] = {}
        async for raw in self.redis.scan_iter(match=pattern, count=1000):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            value = await self.redis.get(key)
            if value is not None:
                try:
                    fresh[key[start:]] = float(value)
                except ValueError:
                    continue
        # Replace, so sids cleared while disconnected go. Changes published during the
        # scan are not lost: subscribed first, their messages are applied after this.
        self._verified = fresh
