"""`auth-service serve` processes with sessions: 2-worker refresh, Redis stopped mid-session.

These run the production wiring (`auth_service.services.build_services`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.keycloak import FakeKeycloak
from tests.integration.sessions.conftest import FORWARD, idp_login
from tests.support.processes import RedisProcess, ServiceProcess, free_port, wait_until


def _service(env: dict[str, str], workers: int) -> ServiceProcess:
    port = free_port()
    return ServiceProcess(
        {**env, "AUTH_PUBLIC_URL": f"http://127.0.0.1:{port}"}, workers=workers, port=port
    )


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def _login(base: str) -> str:
    """Log alice in over HTTP; returns the session cookie value."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as browser:
        start = await browser.get("/auth/login", params={"rd": "/"})
        assert start.status_code == 302, start.text
        callback = await idp_login(start.headers["location"])
        done = await browser.get(callback)
        assert done.status_code == 302, done.text
        cookie = browser.cookies.get("auth_session")
    assert cookie
    return cookie


async def _forward(base: str, cookie: str, *, fresh_connection: bool = False) -> httpx.Response:
    limits = httpx.Limits(max_keepalive_connections=0) if fresh_connection else None
    async with httpx.AsyncClient(base_url=base, timeout=15, limits=limits or httpx.Limits()) as c:
        return await c.get(
            "/authz/forward-auth", headers={**FORWARD, "Cookie": f"auth_session={cookie}"}
        )


async def test_two_workers_refresh_an_expiring_session_once(
    idp_env: dict[str, str], idp: FakeKeycloak
) -> None:
    """50 simultaneous forward-auth calls over new connections to a 2-worker service, on a session
    whose access token is expiring: exactly one refresh reaches the stand-in; all 50 pass."""
    with _service(idp_env, workers=2) as svc:
        wait_until(lambda: _ready(svc.url), 20, "ready")
        idp.access_token_lifespan = 30
        cookie = await _login(svc.url)
        idp.access_token_lifespan = 300
        idp.set_fault("token", "slow", delay=0.3)
        before = idp.requests["token"]
        results = await asyncio.gather(
            *(_forward(svc.url, cookie, fresh_connection=True) for _ in range(50))
        )
        idp.clear_faults()
        assert [r.status_code for r in results] == [200] * 50, results[0].text
        assert idp.requests["token"] - before == 1


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    """A redis-server of this test's own, which it may stop and start."""
    with RedisProcess() as r:
        yield r


async def test_redis_stopped_mid_session_is_503_then_recovers(
    idp_env: dict[str, str], idp: FakeKeycloak, private_redis: RedisProcess
) -> None:
    """With Redis stopped, forward-auth for a session cookie answers 503 (not 500, not 200);
    once Redis is back the same process serves logins and sessions again."""
    with _service({**idp_env, "AUTH_REDIS_URL": private_redis.url}, workers=1) as svc:
        wait_until(lambda: _ready(svc.url), 20, "ready")
        cookie = await _login(svc.url)
        assert (await _forward(svc.url, cookie)).status_code == 200
        private_redis.stop()
        down = await _forward(svc.url, cookie)
        assert down.status_code == 503, down.text
        assert down.headers["retry-after"]
        private_redis.start()  # empty: the old session is gone
        wait_until(lambda: _ready(svc.url), 20, "ready again")
        assert (await _forward(svc.url, cookie)).status_code == 401
        fresh = await _login(svc.url)
        assert (await _forward(svc.url, fresh)).status_code == 200
