"""`migrate` as a plain database owner, and the service run as the least-privilege role.

CONTRACT §1: `auth-service migrate` works for a role that owns its database and
holds nothing else (no superuser, no ``CREATEROLE``, the usual grant of a
managed PostgreSQL); the runtime role is optional and, when it cannot be
created, printed as SQL for a DBA. The runtime role's grants cover everything
the service does in PostgreSQL.

Roles are cluster-wide. The plain-owner test needs a cluster where the runtime
role does not exist yet, so it runs on a throwaway cluster (`PgCluster`); the
least-privilege test runs on the shared one with roles and a database it
creates and drops itself.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pyotp
import pytest
import yaml
from litestar import Litestar
from litestar.testing import AsyncTestClient

from auth_service.app import create_app
from auth_service.config import load_settings
from auth_service.migrations import RUNTIME_ROLE, available_migrations
from tests.conftest import ADMIN_DSN
from tests.fakes.keycloak import FakeKeycloak
from tests.integration.forward_auth.conftest import auth_request
from tests.support.pgcluster import BIN as PG_BIN
from tests.support.pgcluster import PgCluster
from tests.support.ready import until_ready

ROOT = Path(__file__).resolve().parents[2]


def _dsn(base: str, *, user: str, password: str | None = None, db: str) -> str:
    parts = urlsplit(base)
    auth = user if password is None else f"{user}:{password}"
    netloc = f"{auth}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{db}"))


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``auth-service ARGS`` as a subprocess with exactly ``env`` (no .env file)."""
    full = {**os.environ, **env, "AUTH_ENV_FILE": "/nonexistent"}
    return subprocess.run(
        [sys.executable, "-m", "auth_service", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


async def _execute(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def totp_now(secret: str, steps: int = 0) -> str:
    """The code of the current (or a later) 30 s step, on real time."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps)


async def serve_checks(client: AsyncTestClient[Litestar], idp: FakeKeycloak) -> None:
    """A forward-auth decision (signed assertion) and an MFA enrollment, against PostgreSQL."""
    allowed = await auth_request(client, token=idp.mint_access_token("alice"))
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["x-auth-assertion"].count(".") == 2
    r = await client.post(
        "/mfa/totp/enrollment",
        headers={"Authorization": f"Bearer {idp.mint_access_token('carol')}"},
    )
    assert r.status_code == 201, r.text


def app_client(env: dict[str, str]) -> AsyncTestClient[Litestar]:
    """The production app built by `create_app` from ``env`` (no overrides)."""
    app = create_app(load_settings(env, env_file=False), configure_logs=False)
    return AsyncTestClient(app, base_url="http://auth.test")


# --- migrate as a plain owner ----------------------------------------------------------


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    """A throwaway cluster: no runtime role exists in it yet."""
    with PgCluster() as pg:
        yield pg


async def test_plain_owner_migrates_twice_prints_dba_sql_and_runs_the_service(
    cluster: PgCluster, idp_env: dict[str, str], idp: FakeKeycloak
) -> None:
    """A NOCREATEROLE NOSUPERUSER owner: exit 0 twice, the runtime role printed as SQL for a
    DBA, the service starts on it; once the DBA ran the SQL, `migrate` grants the role."""
    idp.add_user("carol", "carol-password", realm_roles=("app-user",))
    await _execute(
        cluster.dsn,
        "CREATE ROLE plain_owner LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB",
        "CREATE DATABASE auth OWNER plain_owner",
    )
    owner = _dsn(cluster.dsn, user="plain_owner", db="auth")
    env = {**idp_env, "AUTH_DATABASE_URL": owner}

    first = cli(env, "migrate")
    assert first.returncode == 0, first.stderr
    for m in available_migrations():
        assert f"applied {m.version:04d}_{m.name}" in first.stdout
    second = cli(env, "migrate")
    assert second.returncode == 0, second.stderr
    assert "schema is up to date" in second.stdout
    for out in (first.stdout, second.stdout):
        assert "may not create roles" in out
        assert f"CREATE ROLE {RUNTIME_ROLE} NOLOGIN;" in out.splitlines()
    assert "Error" not in first.stderr + second.stderr

    conn = await asyncpg.connect(cluster.dsn)
    try:
        assert (
            await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", RUNTIME_ROLE) is None
        )
    finally:
        await conn.close()

    client = app_client(env)
    async with client:
        await until_ready(client)
        await serve_checks(client, idp)

    # The DBA runs the printed SQL (the statements, not the comments) as a superuser.
    sql = [
        line
        for line in second.stdout.splitlines()
        if line and not line.startswith(("--", "applied", "schema"))
    ]
    assert sql == [f"CREATE ROLE {RUNTIME_ROLE} NOLOGIN;"]
    await _execute(_dsn(cluster.dsn, user="postgres", db="auth"), *sql)
    third = cli(env, "migrate")
    assert third.returncode == 0, third.stderr
    assert "notice" not in third.stdout
    conn = await asyncpg.connect(_dsn(cluster.dsn, user="postgres", db="auth"))
    try:
        for table, privilege in (
            ("signing_keys", "SELECT"),
            ("signing_keys", "INSERT"),
            ("audit_events", "INSERT"),
            ("totp_credentials", "UPDATE"),
            ("totp_recovery_codes", "DELETE"),
        ):
            assert await conn.fetchval(
                "SELECT has_table_privilege($1, $2, $3)", RUNTIME_ROLE, table, privilege
            ), (table, privilege)
        assert not await conn.fetchval(
            "SELECT has_table_privilege($1, 'audit_events', 'UPDATE')", RUNTIME_ROLE
        )
    finally:
        await conn.close()


async def test_database_migrated_by_the_earlier_files_is_accepted() -> None:
    """A database whose history records the earlier texts of 0002/0003 (which created the role
    themselves) migrates without complaint, and the current checksums are recorded."""
    from auth_service.migrations import _SUPERSEDED, run_migrations

    name = f"auth_upg_{secrets.token_hex(4)}"
    await _execute(ADMIN_DSN, f'CREATE DATABASE "{name}"')
    dsn = urlunsplit(urlsplit(ADMIN_DSN)._replace(path=f"/{name}"))
    try:
        await run_migrations(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            for version, olds in _SUPERSEDED.items():
                await conn.execute(
                    "UPDATE schema_migrations SET checksum = $2 WHERE version = $1",
                    version,
                    min(olds),
                )
            result = await run_migrations(dsn)
            assert result.applied == []
            recorded = dict(await conn.fetch("SELECT version, checksum FROM schema_migrations"))
        finally:
            await conn.close()
    finally:
        await _execute(ADMIN_DSN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert recorded == {m.version: m.checksum for m in available_migrations()}


# --- the service as the least-privilege role -------------------------------------------


@dataclass
class Roles:
    owner_dsn: str
    runtime_dsn: str


@pytest.fixture
async def least_privilege() -> AsyncIterator[Roles]:
    """A database owned by a plain owner, and a login role that is only a member of the
    runtime role; both dropped afterwards."""
    tag = secrets.token_hex(4)
    owner, runtime, db = f"auth_own_{tag}", f"auth_rt_{tag}", f"auth_lp_{tag}"
    password = secrets.token_hex(8)
    await _execute(
        ADMIN_DSN,
        f"DO $$ BEGIN CREATE ROLE {RUNTIME_ROLE} NOLOGIN; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        f"CREATE ROLE {owner} LOGIN PASSWORD '{password}' NOSUPERUSER NOCREATEROLE",
        f"CREATE ROLE {runtime} LOGIN PASSWORD '{password}' NOSUPERUSER NOCREATEROLE "
        f"IN ROLE {RUNTIME_ROLE}",
        f'CREATE DATABASE "{db}" OWNER {owner}',
    )
    try:
        yield Roles(
            _dsn(ADMIN_DSN, user=owner, password=password, db=db),
            _dsn(ADMIN_DSN, user=runtime, password=password, db=db),
        )
    finally:
        await _execute(
            ADMIN_DSN,
            f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)',
            f"DROP ROLE IF EXISTS {runtime}",
            f"DROP ROLE IF EXISTS {owner}",
        )


async def _audited(client: AsyncTestClient[Litestar], auditor: str, request_id: str) -> bool:
    r = await client.get("/admin/audit-events", headers={"Authorization": f"Bearer {auditor}"})
    assert r.status_code == 200, r.text
    return any(e["request_id"] == request_id for e in r.json()["events"])


async def test_service_runs_every_postgres_capability_as_the_least_privilege_role(
    least_privilege: Roles, idp_env: dict[str, str], idp: FakeKeycloak
) -> None:
    """Migrated by the owner (AUTH_MIGRATE_DATABASE_URL), run as a member of the runtime role
    (AUTH_DATABASE_URL): signing keys, audit write and query, TOTP enroll/confirm/verify,
    recovery code, admin reset, `audit verify` and `keys rotate` all work; DDL does not."""
    idp.add_user("carol", "carol-password", realm_roles=("app-user",))
    env = {
        **idp_env,
        "AUTH_MIGRATE_DATABASE_URL": least_privilege.owner_dsn,
        "AUTH_DATABASE_URL": least_privilege.runtime_dsn,
    }
    migrated = cli(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "notice" not in migrated.stdout, migrated.stdout

    client = app_client(env)
    async with client:
        await until_ready(client)
        carol = {"Authorization": f"Bearer {idp.mint_access_token('carol')}"}
        admin = idp.mint_access_token("admin")
        await serve_checks(client, idp)  # signing keys (created + loaded), TOTP enroll
        r = await client.post("/mfa/totp/enrollment", headers=carol)
        assert r.status_code == 201, r.text  # replaces the pending enrollment (UPDATE)
        secret = r.json()["secret"]
        r = await client.post(
            "/mfa/totp/enrollment/confirm", json={"code": totp_now(secret)}, headers=carol
        )
        assert r.status_code == 200, r.text
        recovery = r.json()["recovery_codes"]
        r = await client.post("/mfa/totp/verify", json={"code": totp_now(secret, 1)}, headers=carol)
        assert r.status_code == 200, r.text
        r = await client.post(
            "/mfa/totp/verify", json={"recovery_code": recovery[0]}, headers=carol
        )
        assert r.status_code == 200, r.text
        r = await client.get("/mfa/totp", headers=carol)
        assert r.json()["recovery_codes_left"] == len(recovery) - 1

        denied = await auth_request(
            client,
            token=idp.mint_access_token("bob"),
            method="POST",
            headers={"X-Request-ID": "rid-least-privilege"},
        )
        assert denied.status_code == 403
        deadline = time.monotonic() + 10
        while not await _audited(client, admin, "rid-least-privilege"):
            assert time.monotonic() < deadline, "the denial was not written as the runtime role"
            await asyncio.sleep(0.05)

        sub = idp.users["carol"].sub
        r = await client.delete(
            f"/admin/users/{sub}/mfa/totp", headers={"Authorization": f"Bearer {admin}"}
        )
        assert r.status_code == 204, r.text

    verified = cli(env, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    rotated = cli(env, "keys", "rotate", "--overlap", "0")
    assert rotated.returncode == 0, rotated.stderr

    conn = await asyncpg.connect(least_privilege.runtime_dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DROP TABLE audit_events")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
    finally:
        await conn.close()


async def test_migrate_names_a_runtime_login_role_outside_the_runtime_role(
    least_privilege: Roles, base_env: dict[str, str]
) -> None:
    """When AUTH_DATABASE_URL's role is not a member of the runtime role, `migrate` prints the
    GRANT a DBA runs and still exits 0."""
    runtime_user = urlsplit(least_privilege.runtime_dsn).username
    await _execute(ADMIN_DSN, f"REVOKE {RUNTIME_ROLE} FROM {runtime_user}")
    env = {
        **base_env,
        "AUTH_MIGRATE_DATABASE_URL": least_privilege.owner_dsn,
        "AUTH_DATABASE_URL": least_privilege.runtime_dsn,
    }
    done = cli(env, "migrate")
    assert done.returncode == 0, done.stderr
    assert f"GRANT {RUNTIME_ROLE} TO {runtime_user};" in done.stdout.splitlines()


# --- the docker-compose roles -----------------------------------------------------------


def _local(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{port}"))


async def test_compose_roles_migrate_as_owner_and_serve_as_runtime_role() -> None:
    """deploy/postgres-init.sql on a fresh cluster, then `migrate` with the compose migrate
    service's environment: no notice, and the compose runtime user holds the runtime grants
    and nothing it could rewrite the schema with."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = {k: str(v) for k, v in compose["services"]["migrate"]["environment"].items()}
    with PgCluster() as pg:
        psql = subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-d",
                pg.dsn,
                "-f",
                str(ROOT / "deploy" / "postgres-init.sql"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert psql.returncode == 0, psql.stderr
        for name in ("AUTH_DATABASE_URL", "AUTH_MIGRATE_DATABASE_URL"):
            env[name] = _local(env[name], pg.port)
        done = cli(env, "migrate")
        assert done.returncode == 0, done.stderr
        assert "applied 0001_signing_keys" in done.stdout
        assert "notice" not in done.stdout, done.stdout
        conn = await asyncpg.connect(env["AUTH_DATABASE_URL"])
        try:
            for table, privilege in (("signing_keys", "INSERT"), ("audit_events", "SELECT")):
                assert await conn.fetchval(
                    "SELECT has_table_privilege(current_user, $1, $2)", table, privilege
                )
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("DROP TABLE audit_events")
        finally:
            await conn.close()
