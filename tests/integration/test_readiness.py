"""``/health/ready`` with real dependencies going away (CONTRACT §10).

``degraded`` (200) while forward-auth still decides correctly: IdP stopped
(cached keys verify), keys older than ``AUTH_JWKS_MAX_AGE`` during that outage,
PostgreSQL unreachable (audit events spool). ``down`` (503) only without usable
keys or before the revocation mirror first synchronised.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from auth_service.app import create_app
from auth_service.config import load_settings
from auth_service.migrations import apply_migrations
from tests.fakes.keycloak import FakeKeycloak, StandInServer
from tests.integration.forward_auth.conftest import auth_request
from tests.support.pgcluster import PgCluster
from tests.support.processes import RedisProcess, eventually, free_port


async def _ready(client: AsyncTestClient[Litestar]) -> tuple[int, dict[str, Any]]:
    r = await client.get("/health/ready")
    assert r.headers["cache-control"] == "no-store"
    return r.status_code, r.json()


async def test_all_dependencies_up_is_ok(service: AsyncTestClient[Litestar]) -> None:
    services = service.app.state.services
    await eventually(lambda: services.idp_probe.reachable, "the first IdP probe")
    assert await _ready(service) == (
        200,
        {
            "status": "ok",
            "postgres": "ok",
            "redis": "ok",
            "oidc": "ok",
            "keys": "fresh",
            "revocations": "synced",
            "assertion_keys": "ok",
        },
    )


async def test_idp_stopped_is_oidc_down_within_30s_degraded_and_decisions_go_on(
    service: AsyncTestClient[Litestar],
    keycloak: tuple[FakeKeycloak, StandInServer],
) -> None:
    idp, server = keycloak
    services = service.app.state.services
    probe = services.idp_probe
    await eventually(lambda: probe.reachable, "the first IdP probe")
    token = idp.mint_access_token("alice")
    assert (await auth_request(service, token=token)).status_code == 200

    server.stop()
    stopped = time.monotonic()
    await eventually(lambda: not probe.reachable, "oidc down after the IdP stopped", 30)
    print(f"oidc reported down {time.monotonic() - stopped:.1f}s after the IdP stopped")
    status, body = await _ready(service)
    assert status == 200
    assert body["status"] == "degraded"
    assert body["oidc"] == "down"
    assert body["keys"] == "fresh"  # still cached and young: only reachability changed
    assert body["postgres"] == body["redis"] == "ok"
    # Cached keys keep deciding: the known token and a new one signed with the same key.
    assert (await auth_request(service, token=token)).status_code == 200
    assert (await auth_request(service, token=idp.mint_access_token("bob"))).status_code == 200

    server.start()  # same port
    await eventually(lambda: probe.reachable, "oidc ok after the IdP came back", 30)
    assert (await _ready(service))[1]["status"] == "ok"


async def test_keys_older_than_max_age_during_an_idp_outage_are_degraded_not_down(
    idp_env: dict[str, str], keycloak: tuple[FakeKeycloak, StandInServer]
) -> None:
    idp, server = keycloak
    settings = load_settings(
        {**idp_env, "AUTH_JWKS_MAX_AGE": "3", "AUTH_JWKS_MIN_REFRESH_INTERVAL": "1"},
        env_file=False,
    )
    app = create_app(settings, configure_logs=False)
    async with AsyncTestClient(app, base_url="http://auth.test") as client:
        services = app.state.services
        await eventually(
            lambda: services.idp.ready and services.revocations.synced.is_set(),
            "IdP discovery and revocation sync",
        )
        token = idp.mint_access_token("alice")
        assert (await auth_request(client, token=token)).status_code == 200
        server.stop()
        await eventually(lambda: not services.idp.jwks.healthy, "keys to go stale", 30)
        status, body = await _ready(client)
        assert status == 200
        assert body["status"] == "degraded"
        assert body["keys"] == "stale"
        assert (await auth_request(client, token=token)).status_code == 200
        assert (await auth_request(client, token=idp.mint_access_token("bob"))).status_code == 200


async def test_postgres_unreachable_is_degraded_and_audit_spools(
    idp_env: dict[str, str], idp: FakeKeycloak
) -> None:
    """The DSN points at a closed port from the start: nothing PostgreSQL-backed works."""
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    env = {**idp_env, "AUTH_DATABASE_URL": closed, "AUTH_AUDIT_SHUTDOWN_TIMEOUT": "0.5"}
    settings = load_settings(env, env_file=False)
    spool = Path(settings.audit_spool_dir)

    def spooled() -> int:
        return sum(f.stat().st_size for f in spool.rglob("*") if f.is_file())

    app = create_app(settings, configure_logs=False)
    async with AsyncTestClient(app, base_url="http://auth.test") as client:
        services = app.state.services
        await eventually(
            lambda: (
                services.idp.ready
                and services.revocations.synced.is_set()
                and services.idp_probe.reachable
            ),
            "IdP discovery, revocation sync and the first IdP probe",
        )
        status, body = await _ready(client)
        assert status == 200, body
        assert body["status"] == "degraded"
        assert body["postgres"] == "down"
        assert body["assertion_keys"] == "down"  # never loaded: allowed requests answer 503
        assert body["redis"] == body["oidc"] == "ok"
        assert body["keys"] == "fresh" and body["revocations"] == "synced"
        # A denial is an audit event: it goes to the local spool, the request is answered.
        before = spooled()
        assert (await auth_request(client, token="a.b.c")).status_code == 401
        await eventually(lambda: spooled() > before, "the denial to reach the audit spool")


@pytest.fixture
def stopped_redis() -> Iterator[RedisProcess]:
    """A private Redis on a free port, not started yet."""
    proc = RedisProcess()
    yield proc
    proc.stop()


async def test_never_synced_revocations_are_down_then_redis_loss_after_sync_is_degraded(
    idp_env: dict[str, str], idp: FakeKeycloak, stopped_redis: RedisProcess
) -> None:
    settings = load_settings({**idp_env, "AUTH_REDIS_URL": stopped_redis.url}, env_file=False)
    app = create_app(settings, configure_logs=False)
    async with AsyncTestClient(app, base_url="http://auth.test") as client:
        services = app.state.services
        await eventually(
            lambda: services.idp.ready and services.idp_probe.reachable,
            "IdP discovery and the first IdP probe",
        )
        r = await client.get("/health/ready")
        assert r.status_code == 503
        assert int(r.headers["retry-after"]) > 0
        assert r.json()["status"] == "down"
        assert r.json()["revocations"] == "never"
        assert r.json()["redis"] == "down"

        stopped_redis.start()
        await eventually(lambda: services.revocations.ever_synced, "first sync", 15)
        status, body = await _ready(client)
        assert (status, body["status"], body["revocations"]) == (200, "ok", "synced")

        stopped_redis.stop()
        await eventually(
            lambda: not services.revocations.synced.is_set(), "the mirror to notice", 15
        )
        status, body = await _ready(client)
        assert status == 200
        assert body["status"] == "degraded"
        assert body["redis"] == "down"
        assert body["revocations"] == "stale"


async def test_postgres_going_away_after_start_is_degraded_and_decisions_go_on(
    idp_env: dict[str, str], idp: FakeKeycloak
) -> None:
    """A private PostgreSQL stops under a running worker: allowed requests keep their assertion."""
    with PgCluster() as pg:
        await apply_migrations(pg.dsn)
        env = {**idp_env, "AUTH_DATABASE_URL": pg.dsn, "AUTH_AUDIT_SHUTDOWN_TIMEOUT": "0.5"}
        settings = load_settings(env, env_file=False)
        app = create_app(settings, configure_logs=False)
        async with AsyncTestClient(app, base_url="http://auth.test") as client:
            services = app.state.services
            await eventually(
                lambda: (
                    services.idp.ready
                    and services.revocations.synced.is_set()
                    and services.idp_probe.reachable
                ),
                "IdP discovery, revocation sync and the first IdP probe",
            )
            assert (await _ready(client))[1]["status"] == "ok"
            pg.stop()
            status, body = await _ready(client)
            assert (status, body["status"], body["postgres"]) == (200, "degraded", "down")
            assert body["assertion_keys"] == "ok"
            r = await auth_request(client, token=idp.mint_access_token("alice"))
            assert r.status_code == 200
            assert r.headers["x-auth-assertion"]
            assert (await auth_request(client, token="a.b.c")).status_code == 401  # spooled
