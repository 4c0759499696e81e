"""Failure counting and lockout of code attempts, in Redis (shared by every worker).

Two counters: per user (CONTRACT §6: 5 failures in 15 minutes lock for 15
minutes) and per source IP (a higher limit, against one client guessing for
many users). A counter is an ``INCR`` with an expiry set by the first failure
(a fixed window); reaching the limit, in the same Lua script, sets a lock key
and drops the counter, so once the lock ends the user has a fresh allowance.

The lock key holds its end time from the service clock and expires in Redis a
little later: the clock decides (tests move it), the TTL only collects garbage.
A success resets the user's counter, not the IP's: succeeding for one's own
account must not buy more guesses for someone else's.

Redis keys (under ``settings.redis_prefix``)::

    mfa:fail:user:<sub>   mfa:lock:user:<sub>
    mfa:fail:ip:<ip>      mfa:lock:ip:<ip>
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

__all__ = ("Limits", "Lockout")

# KEYS: counter, lock. ARGV: limit, window seconds, lock seconds, lock-until (clock time).
# Returns the count after this failure, or -1 when this failure set the lock.
_FAIL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return -1
end
return n
"""


@dataclass(frozen=True, slots=True)
class Limits:
    """Failures allowed within ``window`` seconds before a lock of ``lock`` seconds."""

    failures: int
    window: int
    lock: int


class Lockout:
    """Per-user and per-IP failure counters with lockout.

    Args:
        redis: the worker's client; prefix: ``settings.redis_prefix``.
        user: limits per subject; ip: limits per source address.
        clock: seconds since the epoch (decides when a lock ends).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        user: Limits,
        ip: Limits,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.prefix = f"{prefix}mfa:"
        self.user = user
        self.ip = ip
        self.clock = clock
        self._fail = redis.register_script(_FAIL)

    def _keys(self, kind: str, value: str) -> tuple[str, str]:
        return f"{self.prefix}fail:{kind}:{value}", f"{self.prefix}lock:{kind}:{value}"

    async def locked_for(self, subject: str, ip: str | None) -> int:
        """Seconds until the caller may try again (0: not locked)."""
        keys = [self._keys("user", subject)[1]]
        if ip:
            keys.append(self._keys("ip", ip)[1])
        values = await self.redis.mget(keys)
        now = self.clock()
        wait = 0.0
        for raw in values:
            if raw is not None:
                wait = max(wait, float(raw) - now)
        return math.ceil(wait) if wait > 0 else 0

    async def failure(self, subject: str, ip: str | None) -> tuple[int, int]:
        """Count one failure; ``(failures of the user so far, lock seconds or 0)``.

        When this failure reaches a limit the lock starts now and its length is
        returned (the user's counter then reads as the limit).
        """
        now = self.clock()
        locked = 0
        counter, lock = self._keys("user", subject)
        n = int(await self._fail(keys=[counter, lock], args=self._args(self.user, now)))
        if n < 0:
            locked, n = self.user.lock, self.user.failures
        if ip:
            counter, lock = self._keys("ip", ip)
            if int(await self._fail(keys=[counter, lock], args=self._args(self.ip, now))) < 0:
                locked = max(locked, self.ip.lock)
        return n, locked

    @staticmethod
    def _args(limits: Limits, now: float) -> list[str | int]:
        # The Redis TTL outlives the clock-decided end by a margin, for clock skew.
        return [limits.failures, limits.window, limits.lock + 60, repr(now + limits.lock)]

    async def success(self, subject: str) -> None:
        """Reset the user's failure count (not a lock in force, not the IP's count)."""
        await self.redis.delete(self._keys("user", subject)[0])

    async def reset(self, subject: str) -> None:
        """Drop the user's count and lock (admin reset)."""
        await self.redis.delete(*self._keys("user", subject))
