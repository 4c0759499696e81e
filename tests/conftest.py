"""Test harness: real PostgreSQL and Redis, a fresh database per run, isolated Redis keys.

``AUTH_TEST_DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
is used to create ``auth_test_<random>``, which is migrated at the start and
dropped at the end. ``AUTH_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``)
is shared; every key this run writes is under a random prefix, deleted at the
end. If either server is unreachable the run stops at once with one line
saying how to start it: never a skip.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from auth_service.app import create_app
from auth_service.config import Settings, load_settings
from auth_service.migrations import apply_migrations
from tests.fakes.keycloak import FakeKeycloak, StandInServer
from tests.support.processes import eventually

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
ADMIN_DSN = os.environ.get(
    "AUTH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("AUTH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = secrets.token_hex(4)
START_HINT = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
}


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def pytest_sessionstart(session: pytest.Session) -> None:
    for name, url, port in (("PostgreSQL", ADMIN_DSN, 5432), ("Redis", REDIS_URL, 6379)):
        if not _reachable(url, port):
            pytest.exit(
                f"{name} is not reachable at {url}; start it with: {START_HINT[name]} "
                "(or run `make services`)",
                returncode=3,
            )


def _with_db(dsn: str, dbname: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A freshly created and migrated database for this run, dropped at the end."""
    name = f"auth_test_{RUN_ID}"

    async def create() -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        await apply_migrations(_with_db(ADMIN_DSN, name))

    async def drop() -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    yield _with_db(ADMIN_DSN, name)
    asyncio.run(drop())


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    """This run's Redis key prefix; every key under it is deleted at the end."""
    prefix = f"authtest:{RUN_ID}:"
    yield prefix

    async def clean() -> None:
        client = Redis.from_url(REDIS_URL)
        try:
            async for key in client.scan_iter(match=f"{prefix}*", count=1000):
                await client.delete(key)
        finally:
            await client.aclose()

    asyncio.run(clean())


@pytest.fixture(scope="session")
def secret_key_b64() -> str:
    """A random 32-byte key in base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def base_env(
    database_url: str, redis_prefix: str, secret_key_b64: str, tmp_path: Path
) -> dict[str, str]:
    """A complete, valid settings environment (the IdP points at a closed port)."""
    spool_dir = tmp_path / "audit-spool"
    return {
        "AUTH_OIDC_ISSUER": "http://127.0.0.1:9/realms/acme",
        "AUTH_OIDC_CLIENT_SECRET": "auth-service-secret",
        "AUTH_OIDC_AUDIENCES": "orders-api,auth-service",
        "AUTH_PUBLIC_URL": "http://auth.test",
        "AUTH_DATABASE_URL": database_url,
        "AUTH_REDIS_URL": REDIS_URL,
        "AUTH_REDIS_PREFIX": redis_prefix,
        "AUTH_POLICY_FILE": str(DATA / "policy.toml"),
        "AUTH_SECRET_KEYS": f"k1:{secret_key_b64}",
        "AUTH_ALLOWED_REDIRECT_HOSTS": "app.test,*.app.test",
        "AUTH_CLAIM_HEADERS": "tenant_id=X-Auth-Tenant,org.site=X-Auth-Site",
        "AUTH_AUDIT_SPOOL_DIR": str(spool_dir),
        # Every in-process test client is one address ("testclient") sharing this run's
        # counter; tests/integration/test_bounds.py checks the default limit on its own.
        "AUTH_LOGIN_RATE_LIMIT": "1000000",
    }


@pytest.fixture
def settings(base_env: dict[str, str]) -> Settings:
    """Settings built from `base_env` (no `.env` file)."""
    return load_settings(base_env, env_file=False)


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    """A raw Redis client for assertions."""
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def keycloak() -> Iterator[tuple[FakeKeycloak, StandInServer]]:
    """A Keycloak stand-in served over real HTTP on a free port."""
    fake = FakeKeycloak()
    server = StandInServer(fake)
    server.start()
    yield fake, server
    server.stop()


@pytest.fixture
def idp(keycloak: tuple[FakeKeycloak, StandInServer]) -> FakeKeycloak:
    """The stand-in's in-process control object."""
    return keycloak[0]


@pytest.fixture
def idp_env(base_env: dict[str, str], idp: FakeKeycloak) -> dict[str, str]:
    """Settings environment pointing at the running stand-in."""
    return {**base_env, "AUTH_OIDC_ISSUER": idp.issuer}


@pytest.fixture
def idp_settings(idp_env: dict[str, str]) -> Settings:
    """Settings pointing at the running stand-in."""
    return load_settings(idp_env, env_file=False)


@pytest.fixture
async def service(idp_settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app in-process, lifespan running, IdP discovered and keys loaded."""
    app = create_app(idp_settings, configure_logs=False)
    async with AsyncTestClient(app, base_url="http://auth.test") as client:
        services = app.state.services
        # The app runs in the test client's portal thread: poll, don't await its events.
        await eventually(
            lambda: services.idp.ready and services.revocations.synced.is_set(),
            "IdP discovery and revocation sync",
        )
        yield client
