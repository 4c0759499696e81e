"""Attempt reservation and lockout of code checks, in Redis (shared by every worker).

CONTRACT §6: after 5 wrong codes in 15 minutes a user is locked for 15 minutes
(numbers from settings); the 5th wrong code is answered like any other, the 6th
attempt gets 429; however many attempts arrive at once, no more than 5 codes
are checked in a window.

So an attempt *reserves* a slot before its code is checked, in one Lua script
(atomic in Redis, whatever the number of workers): the script refuses when a
lock is in force or when the slots in use (failures so far plus checks in
flight) already reach the limit, and otherwise takes one. After the check the
attempt settles its slot:

* ``failed``: the slot becomes a failure; the failure that reaches the limit
  sets the lock (from the service clock) and clears the counter, so once the
  lock ends the user has a fresh allowance;
* ``succeeded``: the user's counter is reset (not a lock already in force);
* anything else (the code was not judged: not enrolled, reused, an error):
  the slot is given back.

Per user the counter is a hash ``{n: slots in use, f: failures}`` that expires
one failure window after its first slot (a fixed window).

The per-address limit (one source address guessing for many users) stays a
plain failure counter: its lock is checked by the same reservation script and
a failure is counted after the check. The address is whatever the caller hands
in: the client address by the ``AUTH_TRUSTED_PROXIES`` rule
(`auth_service.observability.client_address`), never a header a client can set.

The lock keys hold their end time from the service clock and expire in Redis a
little later: the clock decides (tests move it), the TTL only collects garbage.

Redis keys (under ``settings.redis_prefix``)::

    mfa:fail:user:<sub>   mfa:lock:user:<sub>
    mfa:fail:ip:<ip>      mfa:lock:ip:<ip>
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from redis.asyncio import Redis

__all__ = ("Attempt", "Limits", "Lockout", "Refused")

# KEYS: user counter, user lock, [ip lock]. ARGV: limit, window seconds, now (clock time).
# Returns {0, slots in use after this one} when a slot was taken, {1, lock end} when a
# lock is in force, {2, 0} when every slot is taken by failures and checks in flight.
_RESERVE = """
local now = tonumber(ARGV[3])
for i = 2, #KEYS do
  local until_ = redis.call('GET', KEYS[i])
  if until_ and tonumber(until_) > now then return {1, until_} end
end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if n >= tonumber(ARGV[1]) then return {2, 0} end
if n == 0 and redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'n', 1, 'f', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return {0, 1}
end
return {0, redis.call('HINCRBY', KEYS[1], 'n', 1)}
"""

# KEYS: user counter, user lock. ARGV: limit, window seconds, lock TTL seconds, lock end.
# Turns a slot into a failure. Returns the failures counted, or -1 when this one set the lock.
_FAIL_USER = """
local f
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- reset meanwhile (a concurrent success): this failure opens a new window
  redis.call('HSET', KEYS[1], 'n', 1, 'f', 1)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  f = 1
else
  f = redis.call('HINCRBY', KEYS[1], 'f', 1)
end
if f >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return -1
end
return f
"""

# KEYS: user counter. Gives an unused slot back (only one that is not a failure).
_RELEASE = """
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local f = tonumber(redis.call('HGET', KEYS[1], 'f') or '0')
if n > f then redis.call('HINCRBY', KEYS[1], 'n', -1) end
return 0
"""

# KEYS: counter, lock. ARGV: limit, window seconds, lock TTL seconds, lock end.
# A plain failure counter (per address). Returns the count, or -1 when it set the lock.
_FAIL_COUNTER = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return -1
end
return n
"""

Outcome = Literal["failed", "succeeded", "released"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Failures allowed within ``window`` seconds before a lock of ``lock`` seconds."""

    failures: int
    window: int
    lock: int


class Refused(Exception):
    """No code may be checked now: a lock is in force or every slot is taken.

    ``retry_after`` is whole seconds (at least 1); ``locked`` is False when no lock
    is set yet but every remaining slot is held by checks in flight.
    """

    def __init__(self, retry_after: int, *, locked: bool) -> None:
        super().__init__(f"code attempts refused for {retry_after}s")
        self.retry_after = retry_after
        self.locked = locked


class Lockout:
    """Per-user attempt slots with lockout, and a per-address failure counter.

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
        self._reserve = redis.register_script(_RESERVE)
        self._fail_user = redis.register_script(_FAIL_USER)
        self._release = redis.register_script(_RELEASE)
        self._fail_counter = redis.register_script(_FAIL_COUNTER)

    def _keys(self, kind: str, value: str) -> tuple[str, str]:
        return f"{self.prefix}fail:{kind}:{value}", f"{self.prefix}lock:{kind}:{value}"

    async def attempt(self, subject: str, ip: str | None) -> Attempt:
        """Reserve a slot for one code check of ``subject`` from ``ip``.

        Use the result as ``async with``: its body calls ``failed()`` or
        ``succeeded()`` once the code is judged; leaving without either gives the
        slot back (the code was not judged: not enrolled, reused, an error).

        Raises:
            Refused: see `reserve`.
        """
        await self.reserve(subject, ip)
        return Attempt(self, subject, ip)

    async def reserve(self, subject: str, ip: str | None) -> int:
        """Take a slot for one code check; the slots in use, this one included.

        Raises:
            Refused: a lock (of the user or the address) is in force, or the user's
                slots are all taken by failures and checks in flight.
        """
        counter, lock = self._keys("user", subject)
        keys = [counter, lock]
        if ip is not None:
            keys.append(self._keys("ip", ip)[1])
        now = self.clock()
        kind, value = await self._reserve(
            keys=keys, args=[self.user.failures, self.user.window, repr(now)]
        )
        if int(kind) == 0:
            return int(value)
        if int(kind) == 1:
            # Another worker may have set the lock after ``now`` was read: never more than
            # a whole lock.
            longest = max(self.user.lock, self.ip.lock)
            raise Refused(min(longest, max(1, math.ceil(float(value) - now))), locked=True)
        # Every slot is held by checks still running: if they all fail, the lock
        # that follows lasts this long.
        raise Refused(self.user.lock, locked=False)

    async def failed(self, subject: str, ip: str | None) -> tuple[int, int]:
        """Settle a slot as a failure: ``(failures of the user so far, lock seconds or 0)``.

        When this failure reaches a limit the lock starts now and its length is
        returned (the user's count then reads as the limit).
        """
        now = self.clock()
        locked = 0
        counter, lock = self._keys("user", subject)
        n = int(await self._fail_user(keys=[counter, lock], args=self._args(self.user, now)))
        if n < 0:
            locked, n = self.user.lock, self.user.failures
        if ip is not None:
            locked = max(locked, await self._address_failed(ip, now))
        return n, locked

    async def _address_failed(self, ip: str, now: float) -> int:
        """Count a failure of the source address; its lock seconds when this one set it."""
        counter, lock = self._keys("ip", ip)
        n = int(await self._fail_counter(keys=[counter, lock], args=self._args(self.ip, now)))
        return self.ip.lock if n < 0 else 0

    async def release(self, subject: str) -> None:
        """Give back a slot whose code was not judged."""
        await self._release(keys=[self._keys("user", subject)[0]])

    @staticmethod
    def _args(limits: Limits, now: float) -> list[str | int]:
        # The Redis TTL outlives the clock-decided end by a margin, for clock skew.
        return [limits.failures, limits.window, limits.lock + 60, repr(now + limits.lock)]

    async def success(self, subject: str) -> None:
        """Reset the user's count (not a lock in force, not the address's count)."""
        await self.redis.delete(self._keys("user", subject)[0])

    async def reset(self, subject: str) -> None:
        """Drop the user's count and lock (admin reset)."""
        await self.redis.delete(*self._keys("user", subject))


class Attempt:
    """A reserved slot for one code check (from `Lockout.attempt`)."""

    __slots__ = ("_ip", "_lockout", "_subject", "outcome")

    def __init__(self, lockout: Lockout, subject: str, ip: str | None) -> None:
        self._lockout = lockout
        self._subject = subject
        self._ip = ip
        self.outcome: Outcome | None = None

    async def __aenter__(self) -> Attempt:
        return self

    async def failed(self) -> tuple[int, int]:
        """The code was wrong: `Lockout.failed`."""
        self.outcome = "failed"
        return await self._lockout.failed(self._subject, self._ip)

    async def succeeded(self) -> None:
        """The code was right: reset the user's count."""
        self.outcome = "succeeded"
        await self._lockout.success(self._subject)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.outcome is None:
            self.outcome = "released"
            await self._lockout.release(self._subject)
