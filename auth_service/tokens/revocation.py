"""Revocation of Keycloak sessions (``sid``) and tokens (``jti``).

The source of truth is Redis: one key per revoked value with a TTL no shorter
than any token it can affect. Every worker mirrors the set in memory so the hot
path (`is_revoked`) makes no Redis round trip:

* a revocation is written to Redis and published on a channel; every worker's
  subscriber adds it to its in-memory set within milliseconds;
* on start and after every reconnect of the subscriber the worker reloads the
  full set with SCAN, so nothing published while it was disconnected is lost
  (subscribe first, then reload, so no window is left between the two);
* until the first reload succeeded (a worker started while Redis is down) the
  in-memory set is unknown, not empty: `is_revoked` raises
  `DependencyUnavailable` (503 + ``Retry-After``) instead of answering "no",
  so a logged-out token is never let through (CONTRACT §10). After that first
  sync a Redis outage keeps the last known set (and the readiness is
  ``degraded``).
"""

from __future__ import annotations

import time
from typing import Literal

import structlog
from redis.asyncio import Redis

from auth_service.errors import DependencyUnavailable
from auth_service.observability.metrics import Metrics
from auth_service.stores.redis_mirror import RedisMirror

__all__ = ("RevocationKind", "Revocations")

log = structlog.get_logger("auth_service.revocation")
RevocationKind = Literal["sid", "jti"]


class Revocations(RedisMirror):
    """Revoked sids and jtis: Redis-backed, mirrored in memory per worker."""

    def __init__(
        self, redis: Redis, *, prefix: str, metrics: Metrics, ttl: int = 24 * 3600
    ) -> None:
        super().__init__(redis, f"{prefix}revocations", name="revocations")
        self.prefix = prefix
        self.metrics = metrics
        self.ttl = ttl
        self._revoked: dict[str, float] = {}  # "sid:<v>" / "jti:<v>" -> local expiry

    def __len__(self) -> int:
        return len(self._revoked)

    def _apply(self, message: str) -> None:
        self._add(message, self.ttl)

    def is_revoked(self, sid: str | None, jti: str | None) -> bool:
        """Whether either value is revoked; in memory, no I/O.

        Raises:
            DependencyUnavailable: the mirror has not synchronised once since start,
                so the answer is unknown (a flag check; no I/O either).
        """
        if not self.ever_synced:
            raise DependencyUnavailable(
                "revocations are not synchronised yet", reason="revocations_unavailable"
            )
        revoked = self._revoked
        if not revoked:
            return False
        return (sid is not None and f"sid:{sid}" in revoked) or (
            jti is not None and f"jti:{jti}" in revoked
        )

    async def revoke(self, kind: RevocationKind, value: str, ttl: int | None = None) -> None:
        """Revoke for every worker and instance (raises `RedisError` when Redis is down)."""
        member = f"{kind}:{value}"
        seconds = ttl or self.ttl
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{self.prefix}revoked:{member}", "1", ex=seconds)
            pipe.publish(self.channel, member)
            await pipe.execute()
        self._add(member, seconds)
        self.metrics.revocations.labels(kind).inc()

    def _add(self, member: str, ttl: float) -> None:
        self._revoked[member] = time.time() + ttl

    def prune(self) -> None:
        """Forget revocations whose TTL has passed (their tokens have expired)."""
        now = time.time()
        for member in [m for m, exp in self._revoked.items() if exp <= now]:
            del self._revoked[member]

    async def _reload(self) -> None:
        pattern = f"{self.prefix}revoked:*"
        start = len(f"{self.prefix}revoked:")
        fresh: dict[str, float] = {}
        now = time.time()
        async for raw in self.redis.scan_iter(match=pattern, count=1000):
            key = raw.decode() if isinstance(raw, bytes) else raw
            ttl = await self.redis.ttl(key)
            fresh[key[start:]] = now + (ttl if ttl and ttl > 0 else self.ttl)
        # Keep values learned from messages during the scan.
        self._revoked = {**self._revoked, **fresh}
