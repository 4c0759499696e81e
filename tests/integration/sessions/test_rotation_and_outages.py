"""Secret-key rotation of stored sessions, and Redis outages (503, then recovery)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator

import msgspec
import pytest
from redis.asyncio import Redis

from auth_service.config import load_settings
from auth_service.crypto import key_id_of
from auth_service.sessions.store import SessionRecord, session_hash
from tests.fakes.keycloak import FakeKeycloak
from tests.integration.sessions.conftest import (
    BROWSER,
    browser_login,
    forward_auth,
    running,
    session_cookie,
)
from tests.support.processes import RedisProcess


async def _key_id(redis: Redis, prefix: str, cookie: str) -> str:
    raw = await redis.get(f"{prefix}session:{session_hash(cookie)}")
    assert raw is not None
    return key_id_of(msgspec.msgpack.decode(raw, type=SessionRecord).tokens)


async def test_sessions_survive_key_rotation(
    idp_env: dict[str, str],
    idp: FakeKeycloak,
    secret_key_b64: str,
    redis_client: Redis,
    redis_prefix: str,
) -> None:
    """A session written under ``k1`` still works after ``AUTH_SECRET_KEYS=k2,k1``; new sessions
    (and refreshed ones) are written under ``k2``."""
    k1 = load_settings(idp_env, env_file=False)
    async with running(k1) as client:
        idp.access_token_lifespan = 30  # so the next request after rotation refreshes
        await browser_login(client)
        idp.access_token_lifespan = 300
        old = session_cookie(client)
    assert await _key_id(redis_client, redis_prefix, old) == "k1"

    k2_b64 = base64.b64encode(secrets.token_bytes(32)).decode()
    rotated = load_settings(
        {**idp_env, "AUTH_SECRET_KEYS": f"k2:{k2_b64},k1:{secret_key_b64}"}, env_file=False
    )
    async with running(rotated) as client:
        allowed = await forward_auth(client, cookie=old)
        assert allowed.status_code == 200, allowed.text
        assert await _key_id(redis_client, redis_prefix, old) == "k2"  # rewritten on refresh
        client.cookies.clear()
        await browser_login(client)
        new = session_cookie(client)
        assert await _key_id(redis_client, redis_prefix, new) == "k2"
        assert (await forward_auth(client, cookie=new)).status_code == 200


async def test_unknown_key_makes_the_session_invalid_not_500(
    idp_env: dict[str, str], idp: FakeKeycloak
) -> None:
    """A session sealed under a key that is no longer configured is refused (401), not a 500."""
    async with running(load_settings(idp_env, env_file=False)) as client:
        await browser_login(client)
        cookie = session_cookie(client)
    other = base64.b64encode(secrets.token_bytes(32)).decode()
    settings = load_settings({**idp_env, "AUTH_SECRET_KEYS": f"k9:{other}"}, env_file=False)
    async with running(settings) as client:
        r = await forward_auth(client, cookie=cookie)
        assert r.status_code == 401
        assert r.json()["reason"] == "session_invalid"


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    """A redis-server of this test's own, which it may stop and start."""
    with RedisProcess() as r:
        yield r


async def test_redis_down_is_503_and_recovers(
    idp_env: dict[str, str], idp: FakeKeycloak, private_redis: RedisProcess
) -> None:
    """Redis stopped mid-session: forward-auth for cookies answers 503 with Retry-After (browsers
    too, never a redirect loop or a 500); once Redis is back the same app works again."""
    settings = load_settings({**idp_env, "AUTH_REDIS_URL": private_redis.url}, env_file=False)
    async with running(settings) as client:
        await browser_login(client)
        assert (await forward_auth(client)).status_code == 200
        private_redis.stop()
        for browser in (False, True):
            r = await client.get(
                "/authz/forward-auth",
                headers={
                    "X-Forwarded-Method": "GET",
                    "X-Forwarded-Proto": "https",
                    "X-Forwarded-Host": "app.test",
                    "X-Forwarded-Uri": "/orders/1",
                    **(BROWSER if browser else {}),
                },
            )
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"]
        assert (await client.get("/auth/login", params={"rd": "/"})).status_code == 503
        private_redis.start()  # an empty Redis: the old session is gone, logins work again
        assert (await forward_auth(client)).status_code == 401
        client.cookies.clear()
        assert (await browser_login(client)).status_code == 302
        assert (await forward_auth(client)).status_code == 200
