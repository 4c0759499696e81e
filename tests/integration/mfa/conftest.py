"""Fixtures for MFA tests: the in-process app built by `create_app` with a test clock, helpers.

The app is the production wiring (`auth_service.services.build_services`); the
only thing handed in is the MFA clock, a `FakeClock` the tests move. Tokens are
still minted and verified on real time, so the clock starts at the real current
time. Browser sessions are created in the real session store (Redis), exactly
as the login callback creates them.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import httpx
import pyotp
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from auth_service.app import create_app
from auth_service.config import Settings
from auth_service.crypto import SecretBox
from auth_service.resources import Resources
from auth_service.services import Services
from auth_service.sessions import SessionStore, session_cookie_name
from auth_service.sessions.store import IdPTokens
from tests.fakes.keycloak import FakeKeycloak
from tests.support.peer import FromPeer
from tests.support.processes import eventually

T = TypeVar("T")
PAYMENTS = "https://app.test/payments/1"
"""A `require_mfa` rule of tests/data/policy.toml."""


class FakeClock:
    """A clock the test moves; starts in the middle of the current 30 s step."""

    def __init__(self) -> None:
        self.now = (int(time.time()) // 30) * 30 + 15.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move forward (or back, with a negative value)."""
        self.now += seconds

    @property
    def step(self) -> int:
        """The current TOTP step."""
        return int(self.now // 30)


@dataclass
class MfaApp:
    """One in-process app instance (production wiring, test clock)."""

    app: Litestar
    client: AsyncTestClient[Litestar]
    clock: FakeClock

    @property
    def services(self) -> Services:
        """The worker's services (read only)."""
        services: Services = self.app.state.services
        return services

    @property
    def res(self) -> Resources:
        """The worker's resources."""
        return self.services.resources

    async def login(self, user: User) -> tuple[str, str]:
        """A browser session of ``user``'s sid in the real session store: (cookie, id)."""
        from tests.conftest import REDIS_URL

        settings = self.res.settings
        redis = Redis.from_url(REDIS_URL)
        try:
            store = SessionStore(
                redis,
                SecretBox(settings.secret_keys),
                prefix=settings.redis_prefix,
                idle_timeout=settings.session_idle_timeout,
                absolute_timeout=settings.session_absolute_timeout,
            )
            session_id, _ = await store.create(
                sub=user.sub,
                sid=user.sid,
                tokens=IdPTokens(access_token=user.token),
                access_exp=time.time() + 300,
            )
        finally:
            await redis.aclose()
        return session_cookie_name(settings.public_url), session_id


@contextlib.asynccontextmanager
async def mfa_app(settings: Settings, clock: FakeClock) -> AsyncIterator[MfaApp]:
    """Start an app instance whose MFA capability uses ``clock``."""
    app = create_app(settings, clock=clock, configure_logs=False)
    # Requests arrive from a gateway on this host, so the users' X-Real-IP is believed.
    async with AsyncTestClient(FromPeer(app), base_url="http://auth.test") as client:
        services: Services = app.state.services
        await eventually(
            lambda: (
                services.idp.ready
                and services.revocations.synced.is_set()
                and services.mfa_state.synced.is_set()
            ),
            "IdP discovery, revocation and MFA state sync",
        )
        yield MfaApp(app, client, clock)


@pytest.fixture
def clock() -> FakeClock:
    """The MFA clock of the in-process app(s)."""
    return FakeClock()


@pytest.fixture
async def svc(idp_settings: Settings, clock: FakeClock) -> AsyncIterator[MfaApp]:
    """The app in-process, production wiring, MFA on the test clock."""
    async with mfa_app(idp_settings, clock) as instance:
        yield instance


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test database for assertions."""
    p = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield p
    await p.close()


@dataclass
class User:
    """A fresh IdP user with a token, talking to one app instance from its own IP."""

    idp: FakeKeycloak
    username: str
    token: str
    sid: str
    sub: str
    ip: str
    secret: str | None = None

    def headers(self, token: str | None = None) -> dict[str, str]:
        """Authorization plus this user's source address."""
        return {"Authorization": f"Bearer {token or self.token}", "X-Real-IP": self.ip}

    def code(self, clock: Callable[[], float], steps: int = 0) -> str:
        """The TOTP code ``steps`` away from the clock's current step."""
        assert self.secret is not None
        return pyotp.TOTP(self.secret).at(clock() + 30 * steps)


def new_user(idp: FakeKeycloak, *, roles: tuple[str, ...] = ("app-user",)) -> User:
    """Create a user with a unique name and an access token of a new Keycloak session."""
    name = f"u{secrets.token_hex(5)}"
    idp.add_user(name, "pw", realm_roles=roles, email=f"{name}@example.com")
    token = idp.mint_access_token(name)
    claims = idp.verify(token)
    assert claims is not None
    ip = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
    return User(idp, name, token, claims["sid"], claims["sub"], ip)


@pytest.fixture
def make_user(idp: FakeKeycloak) -> Callable[..., User]:
    """Factory of fresh users (isolated rows, counters and sessions per test)."""
    return lambda **kw: new_user(idp, **kw)


async def enroll(client: AsyncTestClient[Litestar], user: User, clock: FakeClock) -> list[str]:
    """Enroll and confirm TOTP for ``user`` (confirming with the current code); recovery codes."""
    r = await client.post("/mfa/totp/enrollment", headers=user.headers())
    assert r.status_code == 201, r.text
    user.secret = r.json()["secret"]
    r = await client.post(
        "/mfa/totp/enrollment/confirm", json={"code": user.code(clock)}, headers=user.headers()
    )
    assert r.status_code == 200, r.text
    codes: list[str] = r.json()["recovery_codes"]
    return codes


async def verify(
    client: AsyncTestClient[Litestar], user: User, body: dict[str, str], token: str | None = None
) -> httpx.Response:
    """``POST /mfa/totp/verify``."""
    return await client.post("/mfa/totp/verify", json=body, headers=user.headers(token))


async def forward(
    client: AsyncTestClient[Litestar],
    *,
    token: str | None = None,
    url: str = PAYMENTS,
    browser: bool = False,
) -> httpx.Response:
    """Ask ``/authz/forward-auth`` (Traefik dialect) about ``url``."""
    parts = httpx.URL(url)
    headers = {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": parts.scheme,
        "X-Forwarded-Host": parts.host,
        "X-Forwarded-Uri": parts.raw_path.decode(),
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if browser:
        headers["Accept"] = "text/html,application/xhtml+xml"
    return await client.get("/authz/forward-auth", headers=headers, follow_redirects=False)


async def poll(
    fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str, timeout: float = 10.0
) -> T:
    """Await ``fetch()`` until ``done(result)``; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        result = await fetch()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: {result!r}")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.2)
