"""Versioned SQL migrations shipped in the package, applied by ``auth-service migrate``.

Files are named ``NNNN_description.sql`` and applied in order, each in its own
transaction, and recorded in ``schema_migrations`` with a checksum. The whole
run holds a PostgreSQL advisory lock, so concurrent ``migrate`` processes (say,
several replicas starting at once) serialise: the first applies, the others find
nothing left to do. A changed checksum of an applied file is an error, because
the database no longer matches the code's idea of it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

__all__ = ("Migration", "MigrationError", "apply_migrations", "available_migrations")

# Arbitrary constant identifying "auth-service schema migration" among advisory locks.
_LOCK_KEY = 0x61757468_6D696772
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """The database's migration history does not match the shipped files."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found: list[Migration] = []
    for entry in resources.files(__package__).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return found


async def apply_migrations(dsn: str) -> list[Migration]:
    """Apply pending migrations; returns the ones this call applied."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
            applied = {r["version"]: r["checksum"] for r in rows}
            done: list[Migration] = []
            for migration in available_migrations():
                if migration.version in applied:
                    if applied[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version:04d}_{migration.name} was changed "
                            "after it was applied"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1,$2,$3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                done.append(migration)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()
