"""End to end over real HTTP: a browser-like httpx client with a cookie jar, the service served by
uvicorn, the Keycloak stand-in served over HTTP and delivering back-channel logouts itself."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from auth_service.config import load_settings
from tests.fakes.keycloak import FakeKeycloak
from tests.integration.sessions.conftest import FORWARD, build_app, idp_login
from tests.support.processes import eventually, free_port


@pytest.fixture
async def served(idp_env: dict[str, str]) -> AsyncIterator[str]:
    """The service on a real port; yields its base URL (also its AUTH_PUBLIC_URL)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = build_app(load_settings({**idp_env, "AUTH_PUBLIC_URL": base}, env_file=False))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:

        def ready() -> bool:
            services = getattr(app.state, "services", None)
            if services is None:
                return False
            return bool(services.idp.ready and services.revocations.synced.is_set())

        await eventually(ready, "service discovery and revocation sync")
        yield base
    finally:
        server.should_exit = True
        thread.join(10)


async def test_browser_login_forward_auth_userinfo_and_backchannel_logout(
    served: str, idp: FakeKeycloak
) -> None:
    """/auth/login → stand-in login form → callback → cookie → forward-auth 200 with identity
    headers and /auth/userinfo; then the stand-in ends the IdP session and posts a logout token:
    within 1 s the cookie and bearer tokens of that sid are refused."""
    idp.clients["auth-service"].backchannel_logout_url = f"{served}/auth/backchannel-logout"
    async with httpx.AsyncClient(base_url=served, timeout=10) as browser:
        start = await browser.get("/auth/login", params={"rd": "/auth/userinfo"})
        assert start.status_code == 302
        callback = await idp_login(start.headers["location"])
        assert callback.startswith(f"{served}/auth/callback?")
        landed = await browser.get(callback, follow_redirects=True)
        assert landed.status_code == 200, landed.text
        assert str(landed.url) == f"{served}/auth/userinfo"
        assert landed.json()["username"] == "alice"
        assert browser.cookies.get("auth_session")

        allowed = await browser.get("/authz/forward-auth", headers=FORWARD)
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["x-auth-user"] == "alice"
        assert allowed.headers["x-auth-subject"] == idp.users["alice"].sub

        sid = next(s.sid for s in idp.sessions.values() if s.active and s.username == "alice")
        bearer = idp.mint_access_token("alice", sid=sid)
        api = {**FORWARD, "Authorization": f"Bearer {bearer}"}
        assert (await browser.get("/authz/forward-auth", headers=api)).status_code == 200

        began = time.monotonic()
        deliveries = await idp.end_session(sid)
        assert [d.status_code for d in deliveries] == [200]
        refused = await browser.get("/authz/forward-auth", headers=FORWARD)
        bearer_refused = await browser.get("/authz/forward-auth", headers=api)
        assert time.monotonic() - began < 1.0
        assert refused.status_code == 401
        assert bearer_refused.status_code == 401
        assert bearer_refused.json()["reason"] == "token_revoked"
