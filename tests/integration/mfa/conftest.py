"""Fixtures for MFA tests: the in-process app with the MFA capability wired, a clock, helpers.

Until `auth_service.wiring` and `auth_service.app` carry the MFA lines, the
``mfa_service`` fixture adds them the way production will: `start_mfa` after
the other services, its state handed to forward-auth, its routes registered.
(Once wired in production the fixture only swaps in the test clock.)

The MFA clock is a `FakeClock` the tests move; tokens are still minted and
verified on real time, so the clock starts at the real current time.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import httpx
import pyotp
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

import auth_service.wiring as wiring
from auth_service.app import create_app
from auth_service.config import Settings
from auth_service.mfa import ROUTE_HANDLERS, start_mfa
from auth_service.resources import Resources
from auth_service.tokens.identity import Authenticated
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


class FakeSessions:
    """Stand-in for the sessions capability: cookie value → an access token of the session.

    Resolves through the real `Authenticator`, so the identity (and its ``sid``) is
    exactly what the browser session of that Keycloak session would carry.
    """

    cookie_name = b"auth_session"

    def __init__(self, authenticator: Any) -> None:
        self.authenticator = authenticator
        self.tokens: dict[str, str] = {}

    def login(self, token: str) -> str:
        """A new session id for ``token``."""
        session_id = secrets.token_urlsafe(32)
        self.tokens[session_id] = token
        return session_id

    async def resolve(self, session_id: str) -> Authenticated:
        from auth_service.tokens.service import TokenRejected

        token = self.tokens.get(session_id)
        if token is None:
            raise TokenRejected("session_unknown", "no such session")
        identity: Authenticated = await self.authenticator.authenticate(token)
        return identity


@dataclass
class MfaApp:
    """One in-process app instance with MFA wired."""

    app: Litestar
    client: AsyncTestClient[Litestar]
    clock: FakeClock
    sessions: FakeSessions | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def res(self) -> Resources:
        """The worker's resources."""
        res: Resources = self.app.state.resources
        return res


@contextlib.asynccontextmanager
async def mfa_app(
    settings: Settings,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    *,
    fake_sessions: bool = True,
    real_sessions: bool = False,
) -> AsyncIterator[MfaApp]:
    """Start an app instance whose MFA capability uses ``clock``.

    ``real_sessions`` wires the sessions capability (`auth_service.sessions`) when the
    production wiring does not yet; otherwise ``fake_sessions`` adds `FakeSessions`.
    """
    original = wiring.start_services
    holder: dict[str, Any] = {}

    async def start_services(app: Litestar, res: Resources, stack: Any) -> None:
        await original(app, res, stack)
        if "mfa" not in res.components:  # not yet in production wiring
            state = await start_mfa(res, stack, clock=clock)
        else:  # production wiring: swap the clocks in
            state = res.components["mfa"]
            service = res.components["mfa_service"]
            state.clock = service.codes.clock = service.lockout.clock = clock
        app.state.forward_auth.mfa = state
        if real_sessions:
            if "sessions" not in res.components:  # not yet in production wiring
                from auth_service.sessions import start_sessions

                app.state.forward_auth.sessions = await start_sessions(app, res, stack)
        elif fake_sessions:
            sessions = FakeSessions(res.components["authenticator"])
            res.components["sessions"] = sessions
            app.state.forward_auth.sessions = sessions
            holder["sessions"] = sessions

    monkeypatch.setattr(wiring, "start_services", start_services)
    app = create_app(settings, configure_logs=False)
    paths = {r.path for r in app.routes}
    if "/mfa/totp" not in paths:
        for handler in ROUTE_HANDLERS:
            app.register(handler)
    # Requests arrive from a gateway on this host, so the users' X-Real-IP is believed.
    async with AsyncTestClient(FromPeer(app), base_url="http://auth.test") as client:
        components = app.state.resources.components
        await eventually(
            lambda: (
                components["oidc"].ready
                and components["revocations"].synced.is_set()
                and "mfa" in components
                and components["mfa"].synced.is_set()
            ),
            "IdP discovery, revocation and MFA state sync",
        )
        yield MfaApp(app, client, clock, holder.get("sessions"))


@pytest.fixture
def clock() -> FakeClock:
    """The MFA clock of the in-process app(s)."""
    return FakeClock()


@pytest.fixture
async def svc(
    idp_settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MfaApp]:
    """The app in-process with MFA wired and a fake sessions resolver."""
    async with mfa_app(idp_settings, clock, monkeypatch) as instance:
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
