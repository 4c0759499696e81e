"""Browser sessions in Redis: opaque ids, idle and absolute timeouts, encrypted IdP tokens.

Layout (every key under ``AUTH_REDIS_PREFIX``)::

    session:<h>          msgpack `SessionRecord`, TTL = min(idle, absolute deadline - now)
    session-sid:<sid>    set of <h> of the sessions carrying that Keycloak sid
    session-sub:<sub>    set of <h> of the sessions of that user

``<h>`` is the SHA-256 of the cookie value, so neither a Redis dump nor a
``SCAN`` reveals a usable cookie. The IdP tokens are one `SecretBox` blob
(AES-256-GCM under ``AUTH_SECRET_KEYS``, key id inside the blob) bound to
``<h>`` as additional authenticated data: a blob copied into another session
does not open. Blobs under an old key keep opening and are rewritten under the
first key on the next refresh (`SessionStore.save_tokens`).

Index sets may hold ids of sessions that have since expired; readers ignore
those and the sets expire with the absolute timeout.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

import msgspec
from redis.asyncio import Redis

from auth_service.crypto import DecryptionError, SecretBox

__all__ = ("SESSION_ID_BYTES", "IdPTokens", "SessionRecord", "SessionStore", "new_session_id")

SESSION_ID_BYTES = 32
"""Random bytes in a session id (256 bits; 43 base64url characters)."""


def new_session_id() -> str:
    """A fresh opaque session id."""
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def session_hash(session_id: str) -> str:
    """The Redis name of a session id (hex SHA-256)."""
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


class IdPTokens(msgspec.Struct, frozen=True, kw_only=True):
    """The IdP tokens of a session (only ever stored encrypted)."""

    access_token: str
    refresh_token: str | None = None
    id_token: str | None = None


class SessionRecord(msgspec.Struct, kw_only=True):
    """What Redis holds for one session."""

    sub: str
    """The user (``sub`` of the ID token)."""
    sid: str | None
    """Keycloak session id (``sid`` of the ID token)."""
    created: float
    """Login time (epoch seconds)."""
    expires: float
    """Absolute deadline: the session ends then whatever the activity."""
    access_exp: float
    """Expiry of the current access token (drives refresh without decrypting)."""
    version: int = 1
    """Bumped by every token refresh (waiters watch it)."""
    tokens: bytes = b""
    """`IdPTokens`, msgpack-encoded, sealed by `SecretBox`."""


class SessionStore:
    """Creates, reads, refreshes and ends sessions (raises `RedisError` when Redis is down)."""

    def __init__(
        self,
        redis: Redis,
        box: SecretBox,
        *,
        prefix: str,
        idle_timeout: int,
        absolute_timeout: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.box = box
        self.prefix = prefix
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout
        self._clock = clock
        self._encoder = msgspec.msgpack.Encoder()
        self._record = msgspec.msgpack.Decoder(SessionRecord)
        self._tokens = msgspec.msgpack.Decoder(IdPTokens)

    def _decode(self, raw: object) -> SessionRecord | None:
        if not isinstance(raw, bytes):
            return None
        try:
            return self._record.decode(raw)
        except msgspec.DecodeError:
            return None

    def key(self, session_id: str) -> str:
        """Redis key of a session."""
        return f"{self.prefix}session:{session_hash(session_id)}"

    def _sid_key(self, sid: str) -> str:
        return f"{self.prefix}session-sid:{sid}"

    def _sub_key(self, sub: str) -> str:
        return f"{self.prefix}session-sub:{sub}"

    def _ttl(self, record: SessionRecord) -> int:
        return max(1, int(min(self.idle_timeout, record.expires - self._clock())))

    def seal(self, session_id: str, tokens: IdPTokens) -> bytes:
        """Encrypt ``tokens`` for ``session_id`` under the first secret key."""
        aad = b"session:" + session_hash(session_id).encode()
        return self.box.encrypt(self._encoder.encode(tokens), aad=aad)

    def open(self, session_id: str, record: SessionRecord) -> IdPTokens:
        """Decrypt the tokens of a session (`DecryptionError` if they cannot be opened)."""
        aad = b"session:" + session_hash(session_id).encode()
        try:
            return self._tokens.decode(self.box.decrypt(record.tokens, aad=aad))
        except msgspec.DecodeError:
            raise DecryptionError("session tokens are not a token set") from None

    async def create(
        self, *, sub: str, sid: str | None, tokens: IdPTokens, access_exp: float
    ) -> tuple[str, SessionRecord]:
        """Store a new session; returns its id (the cookie value) and record."""
        session_id = new_session_id()
        now = self._clock()
        record = SessionRecord(
            sub=sub,
            sid=sid,
            created=now,
            expires=now + self.absolute_timeout,
            access_exp=access_exp,
        )
        record.tokens = self.seal(session_id, tokens)
        h = session_hash(session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.key(session_id), self._encoder.encode(record), ex=self._ttl(record))
            if sid:
                pipe.sadd(self._sid_key(sid), h)
                pipe.expire(self._sid_key(sid), self.absolute_timeout)
            pipe.sadd(self._sub_key(sub), h)
            pipe.expire(self._sub_key(sub), self.absolute_timeout)
            await pipe.execute()
        return session_id, record

    async def peek(self, session_id: str) -> SessionRecord | None:
        """The record, without touching the idle timer; ``None`` if gone or past its deadline."""
        record = self._decode(await self.redis.get(self.key(session_id)))
        if record is None or record.expires <= self._clock():
            return None
        return record

    async def load(self, session_id: str) -> SessionRecord | None:
        """The record, restarting its idle timer (one round trip: GET and EXPIRE)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.key(session_id))
            pipe.expire(self.key(session_id), self.idle_timeout, xx=True)
            raw, _ = await pipe.execute()
        record = self._decode(raw)
        if record is None:
            return None
        remaining = record.expires - self._clock()
        if remaining <= 0:
            await self.redis.delete(self.key(session_id))
            return None
        if remaining < self.idle_timeout:
            await self.redis.expire(self.key(session_id), max(1, int(remaining)))
        return record

    async def save_tokens(
        self, session_id: str, record: SessionRecord, tokens: IdPTokens, access_exp: float
    ) -> SessionRecord | None:
        """Store refreshed tokens (re-encrypted under the first key) if the session still exists."""
        updated = msgspec.structs.replace(
            record,
            access_exp=access_exp,
            version=record.version + 1,
            tokens=self.seal(session_id, tokens),
        )
        stored = await self.redis.set(
            self.key(session_id), self._encoder.encode(updated), ex=self._ttl(updated), xx=True
        )
        return updated if stored else None

    async def delete(self, session_id: str) -> SessionRecord | None:
        """End one session; returns what it was."""
        key = self.key(session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(key)
            pipe.delete(key)
            raw, _ = await pipe.execute()
        record = self._decode(raw)
        if record is None:
            return None
        h = session_hash(session_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            if record.sid:
                pipe.srem(self._sid_key(record.sid), h)
            pipe.srem(self._sub_key(record.sub), h)
            await pipe.execute()
        return record

    async def delete_by_sid(self, sid: str) -> list[SessionRecord]:
        """End every session carrying Keycloak session ``sid``; returns the ended ones."""
        return await self._delete_index(self._sid_key(sid))

    async def delete_by_sub(self, sub: str) -> list[SessionRecord]:
        """End every session of user ``sub``; returns the ended ones."""
        return await self._delete_index(self._sub_key(sub))

    async def _delete_index(self, index: str) -> list[SessionRecord]:
        members = await self.redis.smembers(index)
        hashes = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
        if not hashes:
            await self.redis.delete(index)
            return []
        keys = [f"{self.prefix}session:{h}" for h in hashes]
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.get(key)
            pipe.delete(*keys, index)
            results = await pipe.execute()
        ended: list[SessionRecord] = []
        for raw in results[:-1]:
            record = self._decode(raw)
            if record is not None:
                ended.append(record)
        async with self.redis.pipeline(transaction=False) as pipe:
            for record in ended:
                for other in (
                    self._sid_key(record.sid) if record.sid else None,
                    self._sub_key(record.sub),
                ):
                    if other is not None and other != index:
                        pipe.srem(other, *hashes)
            await pipe.execute()
        return ended
