"""A Redis-held set of facts mirrored into every worker's memory, kept current by pub/sub.

Revocations and MFA-verified sessions both need a hot-path check with no
Redis round trip and a change visible on every worker within milliseconds.
`RedisMirror.run` is the shared loop: subscribe first, then reload the full
state (so nothing published between the two is lost), then apply each
published message; on any connection error, back off and start over, which
reloads again, so changes made while disconnected are picked up.
Subclasses say how to reload, apply a message and prune expired entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from abc import ABC, abstractmethod

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ("RedisMirror",)

log = structlog.get_logger("auth_service.stores")


class RedisMirror(ABC):
    """Base of in-memory mirrors of Redis state (see the module docstring)."""

    def __init__(self, redis: Redis, channel: str, *, name: str) -> None:
        self.redis = redis
        self.channel = channel
        self.name = name
        self.synced = asyncio.Event()
        """Set while subscribed and reloaded; cleared while disconnected."""
        self.ever_synced = False
        """True once the first reload succeeded; stays true across later disconnects.

        Before that, the in-memory state is empty because it is unknown, not because
        Redis holds nothing: readers must not take its answers as facts.
        """

    @abstractmethod
    async def _reload(self) -> None:
        """Replace the in-memory state with what Redis holds."""

    @abstractmethod
    def _apply(self, message: str) -> None:
        """Apply one published message."""

    @abstractmethod
    def prune(self) -> None:
        """Forget expired entries."""

    @abstractmethod
    def __len__(self) -> int: ...

    async def run(self, stop: asyncio.Event) -> None:
        """Subscribe, reload, apply published changes until ``stop``; reconnects forever."""
        delay = 0.1
        while not stop.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                await self._reload()
                self.synced.set()
                self.ever_synced = True
                delay = 0.1
                log.info(f"{self.name}_synced", count=len(self))
                last_prune = time.monotonic()
                while not stop.is_set():
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        self._apply(data.decode() if isinstance(data, bytes) else str(data))
                    if time.monotonic() - last_prune > 60:
                        self.prune()
                        last_prune = time.monotonic()
            except (RedisError, OSError) as exc:
                log.warning(f"{self.name}_disconnected", error=exc.__class__.__name__)
                self.synced.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                delay = min(delay * 2, 5.0) * random.uniform(0.8, 1.2)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
