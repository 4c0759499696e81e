"""`auth-service migrate`: ordered, recorded, idempotent, safe when run concurrently."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from auth_service.migrations import apply_migrations, available_migrations
from tests.conftest import ADMIN_DSN


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """A brand-new database, dropped after the test."""
    name = f"auth_mig_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(ADMIN_DSN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    yield urlunsplit(urlsplit(ADMIN_DSN)._replace(path=f"/{name}"))
    conn = await asyncpg.connect(ADMIN_DSN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def applied(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        await conn.close()


async def test_migrations_apply_in_order_and_rerun_is_a_no_op(empty_database: str) -> None:
    """The first run applies every file in order; the second applies nothing."""
    first = await apply_migrations(empty_database)
    assert [m.version for m in first] == [m.version for m in available_migrations()]
    assert await apply_migrations(empty_database) == []
    assert await applied(empty_database) == sorted(m.version for m in available_migrations())


async def test_two_concurrent_migrate_processes_apply_each_migration_once(
    empty_database: str, base_env: dict[str, str]
) -> None:
    """Two `auth-service migrate` started together both succeed; each file is applied once.

    The migrations create tables without ``IF NOT EXISTS``, so a second application
    would fail the process; the history table must also hold each version once.
    """
    env = {
        **os.environ,
        **base_env,
        "AUTH_DATABASE_URL": empty_database,
        "AUTH_ENV_FILE": "/nonexistent",
    }
    cmd = [sys.executable, "-m", "auth_service", "migrate"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    outputs = "".join(out for out, _ in results)
    for m in available_migrations():
        assert outputs.count(f"applied {m.version:04d}_{m.name}") == 1
    assert await applied(empty_database) == sorted(m.version for m in available_migrations())


async def test_changed_migration_is_refused(empty_database: str) -> None:
    """Editing an applied migration makes `migrate` fail instead of drifting silently."""
    await apply_migrations(empty_database)
    conn = await asyncpg.connect(empty_database)
    await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
    await conn.close()
    from auth_service.migrations import MigrationError

    with pytest.raises(MigrationError, match="changed"):
        await apply_migrations(empty_database)
