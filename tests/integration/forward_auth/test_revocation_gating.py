"""A worker whose revocation mirror never synchronised refuses what it cannot check (§4, §10).

The worker starts while its Redis is down: its in-memory revocation list is
unknown, not empty. A token whose ``sid`` was logged out must get 503 +
``Retry-After`` (problem+json), never 200; anonymous rules still answer. Once
Redis is back and the mirror has synchronised, the same token is 401
``token_revoked``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from auth_service.app import create_app
from auth_service.config import load_settings
from auth_service.errors import PROBLEM_JSON
from tests.fakes.keycloak import FakeKeycloak
from tests.integration.forward_auth.conftest import auth_request
from tests.support.processes import RedisProcess, eventually


@pytest.fixture
def stopped_redis() -> Iterator[RedisProcess]:
    """A private Redis on a free port, not started yet (its port refuses connections)."""
    proc = RedisProcess()
    yield proc
    proc.stop()


async def _revoke_sid(url: str, prefix: str, sid: str) -> None:
    """What `Revocations.revoke` writes: the key, then the message on the channel."""
    client = Redis.from_url(url)
    try:
        async with client.pipeline(transaction=True) as pipe:
            pipe.set(f"{prefix}revoked:sid:{sid}", "1", ex=3600)
            pipe.publish(f"{prefix}revocations", f"sid:{sid}")
            await pipe.execute()
    finally:
        await client.aclose()


async def test_never_synced_revocations_refuse_tokens_until_redis_is_back(
    idp_env: dict[str, str], idp: FakeKeycloak, stopped_redis: RedisProcess
) -> None:
    settings = load_settings({**idp_env, "AUTH_REDIS_URL": stopped_redis.url}, env_file=False)
    token = idp.mint_access_token("alice", sid="sid-logged-out")
    other = idp.mint_access_token("bob")
    app = create_app(settings, configure_logs=False)
    async with AsyncTestClient(app, base_url="http://auth.test") as client:
        services = app.state.services
        await eventually(lambda: services.idp.ready, "IdP discovery")
        assert services.revocations.ever_synced is False

        for bearer in (token, other):  # neither can be checked for revocation
            r = await auth_request(client, token=bearer)
            assert r.status_code == 503, r.text
            assert int(r.headers["retry-after"]) > 0
            assert r.headers["content-type"] == PROBLEM_JSON
            assert r.json()["reason"] == "revocations_unavailable"
        # The service's own endpoints refuse the same way (problem+json, not a 500).
        r = await client.get("/auth/userinfo", headers={"Authorization": f"Bearer {other}"})
        assert r.status_code == 503
        assert r.headers["content-type"].startswith(PROBLEM_JSON)
        # Anonymous rules need no credentials checked: they still answer, token or not.
        public = "https://app.test/public/page"
        assert (await auth_request(client, token=token, url=public)).status_code == 200
        assert (await auth_request(client, url=public)).status_code == 200
        # No credentials at all on a protected path: the usual 401, no Redis needed.
        assert (await auth_request(client)).status_code == 401

        stopped_redis.start()
        await _revoke_sid(stopped_redis.url, settings.redis_prefix, "sid-logged-out")
        await eventually(lambda: services.revocations.ever_synced, "revocation mirror sync", 15)
        await eventually(
            lambda: services.revocations.is_revoked("sid-logged-out", None),
            "the revocation to reach the mirror",
        )
        r = await auth_request(client, token=token)
        assert r.status_code == 401
        assert r.json()["reason"] == "token_revoked"
        assert (await auth_request(client, token=other)).status_code == 200
