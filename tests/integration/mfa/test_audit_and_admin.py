"""Audit events of every MFA outcome, the admin reset, and no secret or code in logs/audit."""

from __future__ import annotations

import re
from collections.abc import Callable

import asyncpg
import pytest

from tests.integration.mfa.conftest import MfaApp, User, enroll, poll, verify

EXPECTED = {
    "mfa.enrollment.started",
    "mfa.enrollment.confirmed",
    "mfa.success",
    "mfa.failure",
    "mfa.lockout",
    "mfa.recovery_code.used",
    "mfa.disabled",
    "mfa.admin_reset",
}


async def _rows(pool: asyncpg.Pool, sub: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT type, outcome, reason, actor_sub, subject_sub, source_ip::text AS ip,"
        " user_agent, request_id, details::text AS details, row_to_json(a)::text AS everything"
        " FROM audit_events a WHERE subject_sub = $1",
        sub,
    )


async def test_admin_reset_requires_auth_admin(
    svc: MfaApp, make_user: Callable[..., User], pool: asyncpg.Pool
) -> None:
    """Without the realm role ``auth-admin`` the reset is 403; with it 204 (then 404 as there
    is nothing left); the user's TOTP, lock and MFA-verified sids are gone."""
    c, user = svc.client, make_user()
    admin = make_user(roles=("auth-admin",))
    await enroll(c, user, svc.clock)
    svc.clock.advance(30)
    assert (await verify(c, user, {"code": user.code(svc.clock)})).status_code == 200
    r = await c.delete(f"/admin/users/{user.sub}/mfa/totp", headers=user.headers())
    assert r.status_code == 403 and r.json()["reason"] == "missing_role"
    r = await c.delete(f"/admin/users/{user.sub}/mfa/totp", headers=admin.headers())
    assert r.status_code == 204, r.text
    assert (await c.get("/mfa/totp", headers=user.headers())).json()["enrolled"] is False
    assert not svc.services.mfa_state.is_verified(user.sid)
    r = await c.delete(f"/admin/users/{user.sub}/mfa/totp", headers=admin.headers())
    assert r.status_code == 404
    assert (
        await pool.fetchval("SELECT count(*) FROM totp_recovery_codes WHERE subject = $1", user.sub)
        == 0
    )

    async def audited() -> list[asyncpg.Record]:
        return [r for r in await _rows(pool, user.sub) if r["type"] == "mfa.admin_reset"]

    found = await poll(audited, bool, "the admin reset audit event")
    assert found[0]["actor_sub"] == admin.sub and found[0]["subject_sub"] == user.sub


async def test_every_outcome_is_audited_and_no_secret_leaks(
    svc: MfaApp,
    make_user: Callable[..., User],
    pool: asyncpg.Pool,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Enrollment, success, failure, lockout, recovery code, disable, admin reset: each is an
    audit row for the user, with source IP and request id; neither the rows nor any log line
    contain the secret, a TOTP code that was sent, or a recovery code."""
    c, user = svc.client, make_user()
    admin = make_user(roles=("auth-admin",))
    sent: list[str] = []
    codes = await enroll(c, user, svc.clock)
    sent.append(user.code(svc.clock))
    svc.clock.advance(30)
    sent.append(user.code(svc.clock))
    assert (await verify(c, user, {"code": sent[-1]})).status_code == 200
    assert (await verify(c, user, {"recovery_code": codes[0]})).status_code == 200
    valid = {user.code(svc.clock, s) for s in (-1, 0, 1)}
    wrong = [f"{n:06d}" for n in range(100) if f"{n:06d}" not in valid][:5]
    for w in wrong:
        await verify(c, user, {"code": w})
    svc.clock.advance(901)
    sent.append(user.code(svc.clock))
    r = await c.request("DELETE", "/mfa/totp", json={"code": sent[-1]}, headers=user.headers())
    assert r.status_code == 204, r.text
    await enroll(c, user, svc.clock)
    assert (
        await c.delete(f"/admin/users/{user.sub}/mfa/totp", headers=admin.headers())
    ).status_code == 204

    rows = await poll(
        lambda: _rows(pool, user.sub),
        lambda rs: {r["type"] for r in rs} >= EXPECTED,
        "every MFA audit event type",
    )
    for row in rows:
        if row["type"] != "mfa.admin_reset":
            assert row["ip"] == user.ip and row["request_id"]
    failures = [r for r in rows if r["type"] == "mfa.failure"]
    assert {r["reason"] for r in failures} >= {"invalid_code"}

    assert user.secret is not None
    out, err = capfd.readouterr()
    assert user.sub in out and "mfa.failure" in out  # the app's log lines were captured
    haystacks = [out, err, caplog.text, *(r["everything"] for r in rows)]
    needles = [user.secret, *sent, *codes, *(c.replace("-", "") for c in codes)]
    for text in haystacks:
        for needle in needles:  # whole tokens only: a 6-digit code may occur inside a hex id
            assert not re.search(rf"(?<![0-9A-Za-z]){re.escape(needle)}(?![0-9A-Za-z])", text), (
                needle
            )
