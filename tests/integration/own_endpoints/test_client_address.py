"""Forwarded headers count only from a trusted proxy (CONTRACT §1 ``AUTH_TRUSTED_PROXIES``):
for the audited source of forward-auth decisions and for the per-address MFA limit."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import pyotp
import pytest

from tests.integration.own_endpoints.conftest import (
    UNTRUSTED_PEER,
    App,
    Person,
    events_of,
    wrong_code,
)
from tests.support.peer import GATEWAY

FORGED = {"X-Forwarded-For": "192.0.2.1", "X-Real-IP": "192.0.2.2", "Forwarded": "for=192.0.2.3"}


def _check(path: str = "/admin/users") -> dict[str, str]:
    """An API forward-auth check (Traefik dialect) without credentials: a 401 denial."""
    return {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "app.test",
        "X-Forwarded-Uri": path,
    }


async def test_forward_auth_source_is_the_peer_unless_it_is_a_trusted_proxy(
    own: App, pool: asyncpg.Pool
) -> None:
    """From an untrusted peer, client-sent X-Forwarded-For / X-Real-IP / Forwarded do not
    change the audited source; from the gateway, the right-most untrusted X-Forwarded-For
    entry is the source (a client-made left part is ignored)."""
    own.peer.peer = UNTRUSTED_PEER
    r, rid = await own.request("GET", "/authz/forward-auth", headers={**_check(), **FORGED})
    assert r.status_code == 401
    assert [row["ip"] for row in await events_of(pool, rid)] == [UNTRUSTED_PEER]

    own.peer.peer = GATEWAY
    headers = {**_check(), "X-Forwarded-For": "192.0.2.1, 198.51.100.9", "X-Real-IP": "192.0.2.2"}
    r, rid = await own.request("GET", "/authz/forward-auth", headers=headers)
    assert r.status_code == 401
    assert [row["ip"] for row in await events_of(pool, rid)] == ["198.51.100.9"]


@pytest.fixture
def extra_env() -> dict[str, str]:
    """A small per-address MFA limit, a large per-user one (so only the address locks)."""
    return {"AUTH_MFA_IP_MAX_FAILURES": "3", "AUTH_MFA_MAX_FAILURES": "50"}


async def _enroll(own: App, user: Person) -> str:
    r, _ = await own.request("POST", "/mfa/totp/enrollment", headers=user.bearer())
    assert r.status_code == 201, r.text
    secret: str = r.json()["secret"]
    r, _ = await own.request(
        "POST",
        "/mfa/totp/enrollment/confirm",
        headers=user.bearer(),
        json={"code": pyotp.TOTP(secret).now()},
    )
    assert r.status_code == 200, r.text
    return secret


async def test_forged_headers_do_not_escape_the_per_address_mfa_limit(
    own: App, person: Callable[..., Person], pool: asyncpg.Pool
) -> None:
    """Wrong codes from one untrusted peer, each with a different forged client address,
    all count against that peer: once its limit is used up, every user's attempt from it is
    429, while the same attempt through the gateway for another client address is checked."""
    alice, carol = person(), person()
    secrets_ = {alice.name: await _enroll(own, alice), carol.name: await _enroll(own, carol)}
    own.peer.peer = UNTRUSTED_PEER
    statuses, rids = [], []
    for n in range(4):
        forged = {"X-Forwarded-For": f"192.0.2.{n + 10}", "X-Real-IP": f"192.0.2.{n + 20}"}
        r, rid = await own.request(
            "POST",
            "/mfa/totp/verify",
            headers={**alice.bearer(), **forged},
            json={"code": wrong_code(secrets_[alice.name])},
        )
        statuses.append(r.status_code)
        rids.append(rid)
    assert statuses[:2] == [400, 400] and statuses[3] == 429, statuses
    for rid in rids[:3]:  # the counted failures were audited with the peer as source
        assert {row["ip"] for row in await events_of(pool, rid)} == {UNTRUSTED_PEER}

    r, _ = await own.request(
        "POST",
        "/mfa/totp/verify",
        headers={**carol.bearer(), "X-Forwarded-For": "192.0.2.99"},
        json={"code": wrong_code(secrets_[carol.name])},
    )
    assert r.status_code == 429 and r.json()["reason"] == "mfa_locked"

    own.peer.peer = GATEWAY
    r, _ = await own.request(
        "POST",
        "/mfa/totp/verify",
        headers={**carol.bearer(), "X-Forwarded-For": "198.51.100.44"},
        json={"code": wrong_code(secrets_[carol.name])},
    )
    assert r.status_code == 400 and r.json()["reason"] == "invalid_code"
