"""An in-process app built by `create_app`, whose requests arrive from a TCP peer the test picks.

Aggregation of equal denials is off (``AUTH_AUDIT_AGGREGATE_WINDOW=0``), so every
refusal is its own row and a test can find it by its request id.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pyotp
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from auth_service.app import create_app
from auth_service.config import load_settings
from tests.fakes.keycloak import FakeKeycloak
from tests.support.peer import GATEWAY, FromPeer
from tests.support.processes import eventually

UNTRUSTED_PEER = "203.0.113.77"
"""A peer that is not a trusted proxy (TEST-NET-3)."""


@dataclass
class App:
    """The app, its client, and the peer wrapper whose address a test may change."""

    app: Litestar
    client: AsyncTestClient[Any]
    peer: FromPeer

    async def request(self, method: str, path: str, **kw: Any) -> tuple[httpx.Response, str]:
        """Send with a fresh request id; returns the response and that id."""
        rid = f"t-{secrets.token_hex(8)}"
        headers = {**kw.pop("headers", {}), "X-Request-ID": rid}
        r = await self.client.request(method, path, headers=headers, follow_redirects=False, **kw)
        assert r.headers["x-request-id"] == rid
        return r, rid


@pytest.fixture
def extra_env() -> dict[str, str]:
    """Settings a test module adds (override the fixture)."""
    return {}


@pytest.fixture
async def own(idp_env: dict[str, str], extra_env: dict[str, str]) -> AsyncIterator[App]:
    """The app through the same factory as ``serve``, requests from the gateway by default."""
    env = {**idp_env, "AUTH_AUDIT_AGGREGATE_WINDOW": "0", **extra_env}
    app = create_app(load_settings(env, env_file=False), configure_logs=False)
    peer = FromPeer(app, GATEWAY)
    async with AsyncTestClient(peer, base_url="http://auth.test") as client:
        services = app.state.services
        await eventually(
            lambda: (
                services.idp.ready
                and services.revocations.synced.is_set()
                and services.mfa_state.synced.is_set()
            ),
            "IdP discovery, revocation and MFA state sync",
        )
        yield App(app, client, peer)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test database for assertions."""
    p = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    yield p
    await p.close()


async def events_of(pool: asyncpg.Pool, rid: str, timeout: float = 10.0) -> list[asyncpg.Record]:
    """The audit rows of request ``rid``, once at least one is in PostgreSQL."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await pool.fetch(
            "SELECT type, outcome, reason, actor_sub, subject_sub, source_ip::text AS ip,"
            " details FROM audit_events WHERE request_id = $1",
            rid,
        )
        if rows:
            return list(rows)
        if time.monotonic() > deadline:
            raise AssertionError(f"no audit event for request {rid} after {timeout}s")
        await asyncio.sleep(0.05)  # between polls of a bounded wait, not a timed assertion


@dataclass
class Person:
    """An IdP user with a token of a fresh Keycloak session."""

    name: str
    sub: str
    sid: str
    token: str

    def bearer(self, token: str | None = None) -> dict[str, str]:
        """``Authorization: Bearer``."""
        return {"Authorization": f"Bearer {token or self.token}"}


@pytest.fixture
def person(idp: FakeKeycloak) -> Callable[..., Person]:
    """Factory of fresh users with the given realm roles."""

    def make(*roles: str) -> Person:
        name = f"u{secrets.token_hex(5)}"
        idp.add_user(name, "pw", realm_roles=roles or ("app-user",), email=f"{name}@x.test")
        token = idp.mint_access_token(name)
        claims = idp.verify(token)
        assert claims is not None
        return Person(name, claims["sub"], claims["sid"], token)

    return make


def wrong_code(secret: str) -> str:
    """A six-digit code that no step near now accepts."""
    totp = pyotp.TOTP(secret)
    now = time.time()
    valid = {totp.at(now + 30 * k) for k in range(-3, 4)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in valid)
