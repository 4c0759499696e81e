"""Recovery codes (single use, hashed at rest) and the encrypted TOTP secret column."""

from __future__ import annotations

import base64
from collections.abc import Callable

import asyncpg

from auth_service.crypto import SecretBox
from auth_service.mfa.recovery import normalise
from tests.integration.mfa.conftest import MfaApp, User, enroll, forward, verify


async def test_recovery_code_works_once(svc: MfaApp, make_user: Callable[..., User]) -> None:
    """A recovery code verifies the sid (forward-auth then says totp); its second use is
    refused; the count of codes left drops by one."""
    c, user = svc.client, make_user()
    codes = await enroll(c, user, svc.clock)
    assert len(codes) == 10 and len(set(codes)) == 10
    r = await verify(c, user, {"recovery_code": codes[3].upper()})  # case-insensitive
    assert r.status_code == 200, r.text
    assert (await forward(c, token=user.token)).headers["x-auth-mfa"] == "totp"
    again = await verify(c, user, {"recovery_code": codes[3]})
    assert again.status_code == 400
    status = (await c.get("/mfa/totp", headers=user.headers())).json()
    assert status["recovery_codes_left"] == 9


async def test_table_holds_only_hashes_and_ciphertext(
    svc: MfaApp, make_user: Callable[..., User], pool: asyncpg.Pool
) -> None:
    """Recovery codes are stored as salted argon2id hashes only; the secret column is
    neither the base32 secret nor its bytes, opens only with the subject as associated
    data, and a blob moved to another subject fails to open."""
    c, user = svc.client, make_user()
    codes = await enroll(c, user, svc.clock)
    assert user.secret is not None
    hashes = await pool.fetch(
        "SELECT code_hash FROM totp_recovery_codes WHERE subject = $1", user.sub
    )
    assert len(hashes) == 10
    for row in hashes:
        assert row["code_hash"].startswith("$argon2id$")
        for code in codes:
            assert code not in row["code_hash"] and normalise(code) not in row["code_hash"]
    assert len({r["code_hash"].split("$")[4] for r in hashes}) == 10  # distinct salts

    blob: bytes = await pool.fetchval(
        "SELECT secret FROM totp_credentials WHERE subject = $1", user.sub
    )
    raw = base64.b32decode(user.secret + "=" * (-len(user.secret) % 8))
    assert user.secret.encode() not in blob and raw not in blob
    assert user.secret.lower().encode() not in blob
    box = SecretBox(svc.res.settings.secret_keys)
    assert box.decrypt(blob, aad=b"totp:" + user.sub.encode()).decode() == user.secret
    other = make_user()
    await pool.execute(
        "INSERT INTO totp_credentials (subject, secret, state, confirmed_at) "
        "VALUES ($1, $2, 'confirmed', now())",
        other.sub,
        blob,
    )
    r = await verify(c, other, {"code": user.code(svc.clock, 1)})
    assert r.status_code == 503 and r.json()["reason"] == "secret_unreadable"
    assert user.secret not in r.text
