"""Fixtures for the audit tests: pools, private databases, spool dirs, a fake authenticator."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from auth_service.errors import NotAuthenticated
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


@dataclass(frozen=True)
class FakeIdentity:
    """The identity protocol the audit controller relies on."""

    subject: str
    realm_roles: frozenset[str]
    claims: Any = field(default_factory=lambda: SimpleNamespace(client_id=None))


class FakeAuthenticator:
    """Stand-in for the token service: the bearer token ``<sub>:<role>,<role>`` is valid."""

    async def authenticate(self, token: str) -> FakeIdentity:
        sub, _, roles = token.partition(":")
        if not sub:
            raise NotAuthenticated("invalid token", reason="invalid_token")
        return FakeIdentity(sub, frozenset(r for r in roles.split(",") if r))
