"""Browser-session fixtures: the app as production wires it, an audit trail reader, helpers.

Apps are built by `create_app` (the same `build_services` as ``serve``); audit
events are read back from PostgreSQL, where the worker's audit writer puts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import html.parser
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from auth_service.app import create_app
from auth_service.config import Settings
from auth_service.services import Services

PUBLIC = "http://auth.test"
FORWARD = {
    "X-Forwarded-Method": "GET",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.test",
    "X-Forwarded-Uri": "/orders/1",
}
BROWSER = {"Accept": "text/html,application/xhtml+xml"}


class AuditTrail:
    """Audit events written to PostgreSQL since the test started."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)

    async def seen(self) -> list[tuple[str, str, str | None]]:
        """``(type, outcome, reason)`` of the events so far."""
        rows = await self.pool.fetch(
            "SELECT type, outcome, reason FROM audit_events WHERE occurred_at >= $1"
            " ORDER BY occurred_at",
            self.since,
        )
        return [(r["type"], r["outcome"], r["reason"]) for r in rows]


Events = AuditTrail


@pytest.fixture
async def audit_events(database_url: str) -> AsyncIterator[AuditTrail]:
    """The audit events this test's apps write (read back from PostgreSQL)."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        yield AuditTrail(pool)
    finally:
        await pool.close()


async def audited(
    events: AuditTrail, type: str, reason: str | None = None, timeout: float = 10.0
) -> None:
    """Wait until an audit event of ``type`` (and ``reason``, if given) was written."""
    deadline = time.monotonic() + timeout
    while True:
        seen = await events.seen()
        if any(t == type and (reason is None or r == reason) for t, _, r in seen):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"audit event {type} {reason or ''} not written: saw {seen}")
        await asyncio.sleep(0.05)


def build_app(settings: Settings) -> Litestar:
    """The app exactly as ``serve`` builds it."""
    return create_app(settings, configure_logs=False)


def services_of(app: Litestar) -> Services:
    """The running app's services (read only)."""
    services: Services = app.state.services
    return services


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """One in-process "worker": lifespan running, IdP discovered, revocations synced."""
    from tests.support.processes import eventually

    app = build_app(settings)
    async with AsyncTestClient(app, base_url=PUBLIC) as client:
        client.follow_redirects = False  # redirects to the IdP must not loop back into the app
        services = services_of(app)
        await eventually(
            lambda: services.idp.ready and services.revocations.synced.is_set(),
            "IdP discovery and revocation sync",
        )
        yield client


@pytest.fixture
async def web(idp_settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app in-process (a browser's cookie jar included)."""
    async with running(idp_settings) as client:
        yield client


class _Form(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action", "")
        elif tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")


async def idp_login(
    authorize_url: str, username: str = "alice", password: str | None = None
) -> str:
    """Fill in the stand-in's login form as a browser would; returns the callback URL."""
    async with httpx.AsyncClient(timeout=10) as browser:
        page = await browser.get(authorize_url)
        assert page.status_code == 200, page.text
        form = _Form()
        form.feed(page.text)
        data = {**form.fields, "username": username, "password": password or f"{username}-password"}
        answer = await browser.post(form.action, data=data)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def path_of(url: str) -> str:
    """Path and query of a URL (to replay it against the in-process client)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def start_login(client: AsyncTestClient[Litestar], rd: str = "/auth/userinfo") -> str:
    """``GET /auth/login``; returns the authorization URL it redirects to."""
    r = await client.get("/auth/login", params={"rd": rd})
    assert r.status_code == 302, r.text
    return r.headers["location"]


async def browser_login(
    client: AsyncTestClient[Litestar], username: str = "alice", rd: str = "/auth/userinfo"
) -> httpx.Response:
    """The whole login: /auth/login → stand-in form → callback; returns the callback answer."""
    callback = await idp_login(await start_login(client, rd), username)
    return await client.get(path_of(callback))


def session_cookie(client: httpx.AsyncClient, name: str = "auth_session") -> str:
    """The session id in a client's cookie jar."""
    value = client.cookies.get(name)
    assert value, f"no {name} cookie in {dict(client.cookies)}"
    return value


async def forward_auth(
    client: httpx.AsyncClient, *, browser: bool = False, cookie: str | None = None
) -> httpx.Response:
    """``GET /authz/forward-auth`` as Traefik asks it (the jar's cookie unless ``cookie``)."""
    headers = {**FORWARD, **(BROWSER if browser else {})}
    if cookie is not None:
        headers["Cookie"] = f"auth_session={cookie}"
    return await client.get("/authz/forward-auth", headers=headers)
