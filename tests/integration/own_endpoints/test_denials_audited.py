"""Refusals at the service's own endpoints are audit events in PostgreSQL (CONTRACT §9)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from tests.integration.own_endpoints.conftest import UNTRUSTED_PEER, App, Person, events_of
from tests.support.tokens import parts, with_payload


def _details(row: asyncpg.Record) -> dict[str, Any]:
    raw = row["details"]
    found: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else dict(raw)
    return found


@pytest.mark.parametrize(
    ("method", "path", "kw", "role"),
    [
        ("GET", "/admin/audit-events", {}, "auth-auditor"),
        ("POST", "/admin/revocations", {"json": {"sid": "some-sid"}}, "auth-admin"),
        ("DELETE", "/admin/users/{sub}/mfa/totp", {}, "auth-admin"),
    ],
)
async def test_missing_role_is_one_access_denied_event_with_the_caller(
    own: App,
    person: Callable[..., Person],
    pool: asyncpg.Pool,
    method: str,
    path: str,
    kw: dict[str, Any],
    role: str,
) -> None:
    """bob (a valid token without the role) gets 403 ``missing_role``; exactly one
    ``access.denied`` event names him as actor and subject, with the reason, the source
    address, and the method, host, path and required role in the details."""
    bob = person("app-user")
    own.peer.peer = UNTRUSTED_PEER
    url = path.format(sub=bob.sub)
    r, rid = await own.request(method, url, headers=bob.bearer(), **kw)
    assert r.status_code == 403 and r.json()["reason"] == "missing_role"
    rows = await events_of(pool, rid)
    assert len(rows) == 1
    row = rows[0]
    assert (row["type"], row["outcome"], row["reason"]) == (
        "access.denied",
        "denied",
        "missing_role",
    )
    assert row["actor_sub"] == bob.sub and row["subject_sub"] == bob.sub
    assert row["ip"] == UNTRUSTED_PEER
    assert _details(row) == {
        "method": method,
        "path": url,
        "status": 403,
        "host": "auth.test",
        "required_role": role,
    }
    assert bob.token not in json.dumps(_details(row))


@pytest.mark.parametrize(
    ("method", "path", "kw"),
    [
        ("POST", "/tokens/introspect", {"data": {"token": "anything"}}),
        ("POST", "/mfa/totp/verify", {"json": {"code": "123456"}}),
        ("GET", "/mfa/totp", {}),
    ],
)
async def test_forged_token_is_one_token_rejected_event(
    own: App,
    person: Callable[..., Person],
    pool: asyncpg.Pool,
    method: str,
    path: str,
    kw: dict[str, Any],
) -> None:
    """A token whose payload was changed after signing (``sub`` swapped) is 401, and one
    ``token.rejected`` event records it: no actor (nobody was identified), a reason, the
    path; the forged token itself is nowhere in the event."""
    bob = person("token-introspector", "auth-admin")
    _, claims, _ = parts(bob.token)
    forged = with_payload(bob.token, {**claims, "sub": "someone-else"})
    r, rid = await own.request(method, path, headers=bob.bearer(forged), **kw)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Bearer realm="auth-service"')
    rows = await events_of(pool, rid)
    assert len(rows) == 1
    row = rows[0]
    assert (row["type"], row["outcome"]) == ("token.rejected", "failure")
    assert row["reason"] == r.json()["reason"] and row["reason"]
    assert row["actor_sub"] is None and row["subject_sub"] is None
    details = _details(row)
    assert (details["method"], details["path"], details["status"]) == (method, path, 401)
    assert forged not in json.dumps(details) and "someone-else" not in json.dumps(details)


async def test_no_credentials_is_one_access_denied_event(own: App, pool: asyncpg.Pool) -> None:
    """No credential at all on ``/mfa/totp`` and ``/tokens/introspect``: 401 with the Bearer
    challenge and one ``access.denied`` event ``authentication_required`` each."""
    for method, path, kw in (
        ("GET", "/mfa/totp", {}),
        ("POST", "/tokens/introspect", {"data": {"token": "x"}}),
    ):
        r, rid = await own.request(method, path, **kw)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer realm="auth-service"'
        rows = await events_of(pool, rid)
        assert [(x["type"], x["reason"]) for x in rows] == [
            ("access.denied", "authentication_required")
        ]


async def test_allowed_calls_and_other_paths_are_not_denials(
    own: App, person: Callable[..., Person], pool: asyncpg.Pool
) -> None:
    """An auditor's own listing is no denial, and ``/auth/userinfo`` without credentials
    (outside the audited prefixes) answers 401 without an event."""
    auditor = person("auth-auditor")
    r, rid = await own.request("GET", "/admin/audit-events", headers=auditor.bearer())
    assert r.status_code == 200
    r2, rid2 = await own.request("GET", "/auth/userinfo")
    assert r2.status_code == 401
    # A later audited denial is written after both: once it is in, the two would be too.
    r3, rid3 = await own.request("GET", "/mfa/totp")
    assert r3.status_code == 401
    await events_of(pool, rid3)
    count = await pool.fetchval(
        "SELECT count(*) FROM audit_events WHERE request_id = ANY($1::text[])"
        " AND type IN ('access.denied', 'token.rejected')",
        [rid, rid2],
    )
    assert count == 0
