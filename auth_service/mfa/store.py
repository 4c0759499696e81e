"""PostgreSQL storage of TOTP credentials and recovery codes (migration ``0003_totp``).

The store holds only ciphertext (the secret, a `SecretBox` blob bound to
``b"totp:" + subject``) and argon2id hashes; it never sees a plaintext secret
or code. Encryption and hashing happen in `auth_service.mfa.service`.

Replay protection is `accept_step`, a compare-and-set on ``last_step`` in one
``UPDATE``. PostgreSQL rather than Redis ``SET NX``, because:

* it is atomic across workers and instances: concurrent updates of one row
  serialise on its row lock, and the loser re-evaluates ``last_step < $2``
  against the winner's row version (READ COMMITTED re-check), so exactly one
  of two requests with the same code succeeds;
* it is durable and lives with the credential: a Redis flush, failover or
  eviction cannot make a used code valid again, and disabling the credential
  removes the state with it;
* "newer than the last accepted step" also refuses an *older* code that was
  never used once a newer one was accepted (RFC 6238 §5.2), which per-step
  ``SET NX`` keys cannot express;
* it is one round trip, on a primary-key row, and only on a code submission
  (never on the forward-auth hot path).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

__all__ = ("TotpRecord", "TotpStore")

State = Literal["pending", "confirmed"]


@dataclass(frozen=True, slots=True)
class TotpRecord:
    """One row of ``totp_credentials``."""

    subject: str
    secret: bytes
    """The encrypted secret blob."""
    state: State
    created_at: datetime
    confirmed_at: datetime | None
    last_step: int


class TotpStore:
    """Reads and writes ``totp_credentials`` and ``totp_recovery_codes``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self, subject: str) -> TotpRecord | None:
        """The subject's credential, pending or confirmed."""
        row = await self.pool.fetchrow(
            """SELECT subject, secret, state, created_at, confirmed_at, last_step
               FROM totp_credentials WHERE subject = $1""",
            subject,
        )
        return None if row is None else TotpRecord(**dict(row))

    async def put_pending(self, subject: str, secret: bytes) -> bool:
        """Store a new pending credential, replacing a pending one; ``False`` if confirmed."""
        row = await self.pool.fetchrow(
            """INSERT INTO totp_credentials (subject, secret, state)
               VALUES ($1, $2, 'pending')
               ON CONFLICT (subject) DO UPDATE
                 SET secret = EXCLUDED.secret, created_at = now(), last_step = -1
                 WHERE totp_credentials.state = 'pending'
               RETURNING subject""",
            subject,
            secret,
        )
        return row is not None

    async def confirm(
        self, subject: str, secret: bytes, step: int, code_hashes: Sequence[str]
    ) -> bool:
        """Confirm the pending credential whose blob is ``secret`` at ``step``; store hashes.

        ``False`` when the credential is no longer that pending one (replaced,
        confirmed or deleted concurrently). The confirming code's step becomes
        ``last_step``, so that code cannot be replayed to verify.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """UPDATE totp_credentials
                   SET state = 'confirmed', confirmed_at = now(), last_used_at = now(),
                       last_step = $3
                   WHERE subject = $1 AND state = 'pending' AND secret = $2 AND last_step < $3
                   RETURNING subject""",
                subject,
                secret,
                step,
            )
            if row is None:
                return False
            await conn.execute("DELETE FROM totp_recovery_codes WHERE subject = $1", subject)
            await conn.executemany(
                "INSERT INTO totp_recovery_codes (subject, code_hash) VALUES ($1, $2)",
                [(subject, h) for h in code_hashes],
            )
            return True

    async def accept_step(self, subject: str, step: int) -> bool:
        """Compare-and-set: record ``step`` as used if it is newer than the last accepted one.

        ``True`` for exactly one caller per (subject, step), whatever the concurrency.
        """
        row = await self.pool.fetchrow(
            """UPDATE totp_credentials SET last_step = $2, last_used_at = now()
               WHERE subject = $1 AND state = 'confirmed' AND last_step < $2
               RETURNING subject""",
            subject,
            step,
        )
        return row is not None

    async def delete(self, subject: str) -> bool:
        """Remove the credential and its recovery codes; ``False`` if there was none."""
        result: str = await self.pool.execute(
            "DELETE FROM totp_credentials WHERE subject = $1", subject
        )
        return result != "DELETE 0"

    async def unused_codes(self, subject: str) -> list[tuple[int, str]]:
        """``(id, argon2id hash)`` of the subject's unused recovery codes."""
        rows = await self.pool.fetch(
            """SELECT id, code_hash FROM totp_recovery_codes
               WHERE subject = $1 AND used_at IS NULL ORDER BY id""",
            subject,
        )
        return [(r["id"], r["code_hash"]) for r in rows]

    async def use_code(self, subject: str, code_id: int) -> bool:
        """Mark a recovery code used; ``True`` for exactly one caller (compare-and-set)."""
        row = await self.pool.fetchrow(
            """UPDATE totp_recovery_codes SET used_at = now()
               WHERE id = $1 AND subject = $2 AND used_at IS NULL RETURNING id""",
            code_id,
            subject,
        )
        return row is not None

    async def codes_left(self, subject: str) -> int:
        """How many unused recovery codes the subject has."""
        count: int = await self.pool.fetchval(
            """SELECT count(*) FROM totp_recovery_codes
               WHERE subject = $1 AND used_at IS NULL""",
            subject,
        )
        return count
