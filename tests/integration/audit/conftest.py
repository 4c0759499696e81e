"""Fixtures for the audit tests: pools, private databases, spool dirs, a fake authenticator."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from auth_service.migrations import apply_migrations
from tests.conftest import ADMIN_DSN


def with_db(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name``."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


@pytest.fixture
async def fresh_db() -> AsyncIterator[str]:
    """A migrated database of its own (for tests that tamper with the chain), dropped after."""
    name = f"auth_audit_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(ADMIN_DSN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    dsn = with_db(ADMIN_DSN, name)
    await apply_migrations(dsn)
    yield dsn
    conn = await asyncpg.connect(ADMIN_DSN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on this run's shared test database."""
    p = await asyncpg.create_pool(database_url, min_size=0, max_size=4)
    yield p
    await p.close()


@pytest.fixture
def spool_root(tmp_path: Path) -> Path:
    """An empty spool root."""
    root = tmp_path / "spool"
    root.mkdir()
    return root
