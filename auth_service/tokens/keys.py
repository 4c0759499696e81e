"""The ES256 keys ``X-Auth-Assertion`` is signed with, shared by every worker through PostgreSQL.

Each key lives in one row of ``signing_keys`` (see the migration for the
columns): the public JWK as published, and the PKCS#8 private key encrypted
with `auth_service.crypto.SecretBox` (``aad`` = ``b"signing_keys:" + kid``, so a
blob moved to another row, or a secret of another kind, does not open). The
kid is the key's RFC 7638 thumbprint. Private keys exist in clear only in worker
memory; nothing here logs key material.

A key's state follows from its timestamps alone, so no job has to run at the
right moment::

    rotate ──► published ──(activated_at)──► signs ──(successor activates)──► published
                                                       ──(retired_at)──► gone

* `SigningKeyStore.rotate` inserts a key whose ``activated_at`` lies ``overlap``
  seconds ahead: workers publish it at their next refresh, so downstream JWKS
  caches know it before the first assertion signed with it arrives.
* The same call sets the predecessor's ``retired_at`` to the successor's
  activation + assertion lifetime + `RETIRE_MARGIN`: until then, assertions it
  signed just before the switch still verify downstream. The margin covers the
  verifier's leeway, clock skew, and a worker that learns of the new key up to
  one refresh late (and keeps signing with the old key meanwhile).
* Rotating again while a key is still pending withdraws the pending key at once
  (it has signed nothing): the latest rotation wins. A new key always activates
  strictly after every other unretired key. To withdraw a compromised
  key immediately, ``UPDATE signing_keys SET retired_at = now() WHERE kid = ...``
  and rotate (or restart: `SigningKeyStore.ensure_active` creates a key when none
  is usable).

Writers (`ensure_active`, `rotate`) serialise on a transaction-scoped advisory
lock, so concurrent workers and CLI runs never create two keys for one need.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from auth_service.crypto import DecryptionError, SecretBox

__all__ = (
    "RETIRE_MARGIN",
    "KeyRing",
    "NoSigningKey",
    "SigningKey",
    "SigningKeyStore",
)

RETIRE_MARGIN = 30.0
"""Seconds a superseded key stays published beyond the last assertion it may have signed."""
_PRUNE_AFTER = 86_400.0
"""Rows retired longer than this are deleted by `SigningKeyStore.rotate`."""
# Arbitrary constant naming "auth-service signing keys" among advisory locks ("authkeys").
_LOCK_KEY = 0x61757468_6B657973

log = structlog.get_logger("auth_service.tokens.keys")


class NoSigningKey(LookupError):
    """Raised by `KeyRing.signer` when no key may sign at this moment."""


def _aad(kid: str) -> bytes:
    return b"signing_keys:" + kid.encode()


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, slots=True, repr=False)
class SigningKey:
    """One row of ``signing_keys``, decrypted."""

    kid: str
    """RFC 7638 thumbprint of the public key."""
    public_jwk: Mapping[str, Any]
    """Public JWK with ``kid``, ``use: sig`` and ``alg: ES256``."""
    private_key: ECKey | None
    """The signing key; ``None`` when this worker cannot decrypt it (logged at load)."""
    activated_at: float
    """Seconds since the epoch from which it may sign."""
    retired_at: float | None
    """Seconds since the epoch from which it is neither published nor used."""

    def __repr__(self) -> str:
        return (
            f"SigningKey(kid={self.kid!r}, activated_at={self.activated_at}, "
            f"retired_at={self.retired_at})"
        )

    def retired(self, now: float) -> bool:
        """Whether the key is withdrawn at ``now``."""
        return self.retired_at is not None and self.retired_at <= now


class KeyRing:
    """An immutable snapshot of the signing keys; every question takes the time explicitly."""

    __slots__ = ("keys",)

    def __init__(self, keys: Iterable[SigningKey]) -> None:
        self.keys: tuple[SigningKey, ...] = tuple(
            sorted(keys, key=lambda k: (k.activated_at, k.kid), reverse=True)
        )
        """Newest activation first."""

    def __repr__(self) -> str:
        return f"KeyRing({[k.kid for k in self.keys]!r})"

    def current(self, now: float) -> SigningKey | None:
        """The unretired key with the latest ``activated_at <= now``, if any."""
        for key in self.keys:
            if key.activated_at <= now and not key.retired(now):
                return key
        return None

    def signer(self, now: float) -> tuple[str, ECKey]:
        """``(kid, private key)`` to sign with at ``now``.

        Only the current key qualifies: falling back to an older one could sign
        assertions that outlive its publication.

        Raises:
            NoSigningKey: no key is active, or this worker cannot decrypt the current one.
        """
        key = self.current(now)
        if key is None:
            raise NoSigningKey("no active signing key")
        if key.private_key is None:
            raise NoSigningKey(f"signing key {key.kid} cannot be decrypted by this worker")
        return key.kid, key.private_key

    def published(self, now: float) -> list[dict[str, Any]]:
        """Public JWKs to serve at ``now``: pending, active, and recently superseded keys."""
        return [dict(k.public_jwk) for k in self.keys if not k.retired(now)]


class SigningKeyStore:
    """Signing keys in PostgreSQL; see the module docstring for their life cycle.

    Args:
        pool: asyncpg pool (or anything with ``acquire()`` and ``fetch()``).
        box: encrypts and decrypts the private keys.
        assertion_ttl: lifetime of assertions, for the predecessor's retirement time.
        retire_margin: extra seconds the predecessor stays published.
        clock: seconds since the epoch; injectable for tests.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        box: SecretBox,
        *,
        assertion_ttl: int = 60,
        retire_margin: float = RETIRE_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self._box = box
        self._ttl = assertion_ttl
        self._margin = retire_margin
        self._clock = clock

    async def ensure_active(self) -> None:
        """Create a key active at once if none is active now; safe to call from every worker."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            now = _ts(self._clock())
            active = await conn.fetchval(
                "SELECT kid FROM signing_keys WHERE activated_at <= $1"
                " AND (retired_at IS NULL OR retired_at > $1) LIMIT 1",
                now,
            )
            if active is None:
                kid = await self._insert(conn, now)
                log.info("signing_key_created", kid=kid, activated_at=now.isoformat())

    async def rotate(self, overlap: float) -> str:
        """Add a key published now and signing from ``overlap`` seconds on; returns its kid.

        Raises:
            ValueError: if ``overlap`` is negative.
        """
        if overlap < 0:
            raise ValueError("overlap must not be negative")
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            now = self._clock()
            # Keys still pending have signed nothing: the latest rotation replaces them.
            await conn.execute(
                "UPDATE signing_keys SET retired_at = $1 WHERE activated_at > $1"
                " AND (retired_at IS NULL OR retired_at > $1)",
                _ts(now),
            )
            # Strictly after every remaining key, so the ring's order is never a tie.
            latest: datetime | None = await conn.fetchval(
                "SELECT max(activated_at) FROM signing_keys"
                " WHERE retired_at IS NULL OR retired_at > $1",
                _ts(now),
            )
            activates = now + overlap
            if latest is not None and latest.timestamp() >= activates:
                activates = latest.timestamp() + 0.001
            await conn.execute(
                "UPDATE signing_keys SET retired_at = LEAST(COALESCE(retired_at, 'infinity'), $1)"
                " WHERE activated_at < $2",
                _ts(activates + self._ttl + self._margin),
                _ts(activates),
            )
            kid = await self._insert(conn, _ts(activates))
            pruned = await conn.execute(
                "DELETE FROM signing_keys WHERE retired_at < $1", _ts(now - _PRUNE_AFTER)
            )
        log.info(
            "signing_key_rotated",
            kid=kid,
            activated_at=_ts(activates).isoformat(),
            pruned=int(pruned.split()[-1]),
        )
        return kid

    async def load(self) -> KeyRing:
        """All stored keys, private parts decrypted (a failure is logged; the key stays public)."""
        rows = await self._pool.fetch(
            "SELECT kid, public_jwk::text AS jwk, private_enc, enc_key_id, activated_at,"
            " retired_at FROM signing_keys"
        )
        keys: list[SigningKey] = []
        for row in rows:
            kid: str = row["kid"]
            private: ECKey | None
            try:
                der = self._box.decrypt(bytes(row["private_enc"]), aad=_aad(kid))
                private = ECKey.import_key(der)
            except (DecryptionError, ValueError):
                log.error("signing_key_undecryptable", kid=kid, enc_key_id=row["enc_key_id"])
                private = None
            retired: datetime | None = row["retired_at"]
            keys.append(
                SigningKey(
                    kid=kid,
                    public_jwk=msgspec.json.decode(row["jwk"]),
                    private_key=private,
                    activated_at=row["activated_at"].timestamp(),
                    retired_at=None if retired is None else retired.timestamp(),
                )
            )
        return KeyRing(keys)

    async def _insert(self, conn: asyncpg.Connection, activated_at: datetime) -> str:
        native = ec.generate_private_key(ec.SECP256R1())
        key = ECKey.import_key(native)
        kid = key.thumbprint()
        public = {**key.as_dict(private=False), "kid": kid, "use": "sig", "alg": "ES256"}
        der = native.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        await conn.execute(
            "INSERT INTO signing_keys (kid, alg, public_jwk, private_enc, enc_key_id, activated_at)"
            " VALUES ($1, 'ES256', $2::jsonb, $3, $4, $5)",
            kid,
            msgspec.json.encode(public).decode(),
            self._box.encrypt(der, aad=_aad(kid)),
            self._box.primary_key_id,
            activated_at,
        )
        return kid
