"""Browser-session fixtures: the app with the session wiring applied, and a login helper.

Production wiring (``auth_service.wiring.start_services`` and the route list in
``auth_service.app``) does not include sessions yet; `wired` patches
``start_services`` to call the original and then `start_sessions`, and
`build_app` registers the controller, exactly as the wiring lines will.
"""

from __future__ import annotations

import contextlib
import html.parser
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

import auth_service.wiring as wiring
from auth_service.app import create_app
from auth_service.config import Settings
from auth_service.oidc.controllers import BrowserLoginController
from auth_service.sessions import start_sessions
from tests.support.processes import eventually

PUBLIC = "http://auth.test"
FORWARD = {
    "X-Forwarded-Method": "GET",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.test",
    "X-Forwarded-Uri": "/orders/1",
}
BROWSER = {"Accept": "text/html,application/xhtml+xml"}


class AuditRecorder:
    """Wraps the worker's `AuditLog`: records ``(type, outcome, reason)`` and passes events on."""

    def __init__(self, inner: Any, seen: list[tuple[str, str, str | None]]) -> None:
        self.inner = inner
        self.seen = seen

    def emit(self, type: Any, *, outcome: Any, **fields: Any) -> str | None:
        self.seen.append((type, outcome, fields.get("reason")))
        result: str | None = self.inner.emit(type, outcome=outcome, **fields)
        return result


@pytest.fixture
def audit_events() -> list[tuple[str, str, str | None]]:
    """Audit events emitted by the session and login code of this test's apps."""
    return []


@pytest.fixture
def wired(monkeypatch: pytest.MonkeyPatch, audit_events: list[tuple[str, str, str | None]]) -> None:
    """Apply the session wiring lines to every app started in this test (once production
    wiring has them, only the audit recorder is added)."""

    async def recorded(app: Litestar, res: Any, stack: contextlib.AsyncExitStack) -> Any:
        res.components["audit"] = AuditRecorder(res.components["audit"], audit_events)
        return await start_sessions(app, res, stack)

    if hasattr(wiring, "start_sessions"):
        monkeypatch.setattr(wiring, "start_sessions", recorded)
        return
    original = wiring.start_services

    async def start_services(app: Litestar, res: Any, stack: contextlib.AsyncExitStack) -> None:
        await original(app, res, stack)
        app.state.forward_auth.sessions = await recorded(app, res, stack)

    monkeypatch.setattr(wiring, "start_services", start_services)


async def audited(
    events: list[tuple[str, str, str | None]], type: str, reason: str | None = None
) -> None:
    """Wait until an audit event of ``type`` (and ``reason``, if given) was emitted."""
    await eventually(
        lambda: any(t == type and (reason is None or r == reason) for t, _, r in events),
        f"audit event {type} {reason or ''}: saw {events}",
    )


def build_app(settings: Settings) -> Litestar:
    """`create_app` plus the browser-login controller (unless `create_app` has it)."""
    app = create_app(settings, configure_logs=False)
    if not any(route.path == "/auth/login" for route in app.routes):
        app.register(BrowserLoginController)
    return app


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """One in-process "worker": lifespan running, IdP discovered, revocations synced."""
    app = build_app(settings)
    async with AsyncTestClient(app, base_url=PUBLIC) as client:
        client.follow_redirects = False  # redirects to the IdP must not loop back into the app
        components = app.state.resources.components
        await eventually(
            lambda: components["oidc"].ready and components["revocations"].synced.is_set(),
            "IdP discovery and revocation sync",
        )
        yield client


@pytest.fixture
async def web(wired: None, idp_settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The wired app in-process (a browser's cookie jar included)."""
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
