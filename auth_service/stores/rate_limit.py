"""A fixed-window request limit per subject (e.g. per client address), shared through Redis.

One Lua script is the whole step: count the hit and make sure the window's
key expires, atomically, so however many requests arrive at once on however
many workers, no more than ``limit`` pass in a window, and a counter key can
never be left without its expiry. A subject costs one small key, whatever it
sends; the key name holds a digest of the subject, so its length is bounded
too.
"""

from __future__ import annotations

import hashlib
import math

from redis.asyncio import Redis

__all__ = ("FixedWindowLimiter",)

# KEYS[1] the window's counter; ARGV[1] the window in milliseconds.
# Returns {hits in this window, milliseconds until the window ends}.
_HIT = """
local hits = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {hits, ttl}
"""


class FixedWindowLimiter:
    """At most ``limit`` hits per subject within each ``window`` seconds."""

    def __init__(self, redis: Redis, *, prefix: str, name: str, limit: int, window: int) -> None:
        if limit < 1 or window < 1:
            raise ValueError("limit and window must be at least 1")
        self.limit = limit
        self.window = window
        self._key_prefix = f"{prefix}ratelimit:{name}:"
        self._script = redis.register_script(_HIT)

    def key(self, subject: str) -> str:
        """The Redis key counting ``subject``'s current window."""
        digest = hashlib.sha256(subject.encode("utf-8", "replace")).hexdigest()[:32]
        return self._key_prefix + digest

    async def hit(self, subject: str) -> int | None:
        """Count one hit; ``None`` when it is allowed, else the seconds until the window ends.

        Raises:
            redis.exceptions.RedisError: Redis is unreachable (callers answer 503).
        """
        hits, ttl_ms = await self._script(keys=[self.key(subject)], args=[self.window * 1000])
        if int(hits) <= self.limit:
            return None
        return max(1, math.ceil(int(ttl_ms) / 1000))
