"""Versioned SQL migrations shipped in the package, applied by ``auth-service migrate``.

Files are named ``NNNN_description.sql`` and applied in order, each in its own
transaction, and recorded in ``schema_migrations`` with a checksum. The whole
run holds a PostgreSQL advisory lock, so concurrent ``migrate`` processes (say,
several replicas starting at once) serialise: the first applies, the others find
nothing left to do. A changed checksum of an applied file is an error, because
the database no longer matches the code's idea of it (except the few earlier
texts listed in `_SUPERSEDED`, edited in ways that leave an applied schema
as it is: they are accepted and the new checksum recorded).

Privileges (CONTRACT §1). Every versioned file runs with nothing but ownership
of the database: no role is created and no role is named in them. The
least-privilege runtime role ``auth_app`` (NOLOGIN) is optional: after the
versioned files, `run_migrations` creates it when the migrating role may
(superuser or ``CREATEROLE``) and applies ``runtime_grants.sql`` to it when it
exists. When it cannot, the result carries notices, including the SQL a DBA
runs, and the run still succeeds.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from urllib.parse import unquote, urlsplit

import asyncpg

__all__ = (
    "RUNTIME_ROLE",
    "Migration",
    "MigrationError",
    "MigrationResult",
    "apply_migrations",
    "available_migrations",
    "run_migrations",
    "runtime_grants_sql",
)

RUNTIME_ROLE = "auth_app"
"""The NOLOGIN group role holding exactly the runtime's privileges (``runtime_grants.sql``)."""

# Arbitrary constant identifying "auth-service schema migration" among advisory locks.
_LOCK_KEY = 0x61757468_6D696772
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_SUPERSEDED: dict[int, frozenset[str]] = {
    # 0002 and 0003 created the runtime role and granted to it: moved to
    # runtime_grants.sql so that a database owner without CREATEROLE can migrate.
    2: frozenset({"27e0a26fbe66b550615ba0ec418569abf8ff2cf4a8e133ed2377ad004552127f"}),
    3: frozenset({"a230615690c33a2bdf7657ceccad17bff6fdda2719a02ce93bcdbf9b743fbadd"}),
}
"""Version → checksums of earlier texts of that file that are accepted as applied."""


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


@dataclass(slots=True)
class MigrationResult:
    """What one `run_migrations` call did."""

    applied: list[Migration] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    """Lines for the operator (SQL comments or SQL): what was optional and not done."""


def runtime_grants_sql() -> str:
    """The text of ``runtime_grants.sql``: every privilege of `RUNTIME_ROLE`."""
    return resources.files(__package__).joinpath("runtime_grants.sql").read_text(encoding="utf-8")


async def apply_migrations(dsn: str) -> list[Migration]:
    """Apply pending migrations; returns the ones this call applied."""
    return (await run_migrations(dsn)).applied


async def run_migrations(dsn: str, runtime_dsn: str | None = None) -> MigrationResult:
    """Apply pending migrations, then provide the runtime role as far as ``dsn``'s role may.

    ``runtime_dsn`` is the DSN the service runs with; when its user differs from
    the migrating one and is not a member of `RUNTIME_ROLE`, a notice says so.
    """
    result = MigrationResult()
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
            for migration in available_migrations():
                if migration.version in applied:
                    await _check_applied(conn, migration, applied[migration.version])
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1,$2,$3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                result.applied.append(migration)
            result.notices += await _provide_runtime_role(conn, runtime_dsn)
            return result
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()


async def _check_applied(conn: asyncpg.Connection, migration: Migration, recorded: str) -> None:
    if recorded == migration.checksum:
        return
    if recorded in _SUPERSEDED.get(migration.version, frozenset()):
        await conn.execute(
            "UPDATE schema_migrations SET checksum = $2 WHERE version = $1",
            migration.version,
            migration.checksum,
        )
        return
    raise MigrationError(
        f"migration {migration.version:04d}_{migration.name} was changed after it was applied"
    )


async def _provide_runtime_role(conn: asyncpg.Connection, runtime_dsn: str | None) -> list[str]:
    """Create `RUNTIME_ROLE` if allowed and grant it its privileges; notices for the rest."""
    me: str = await conn.fetchval("SELECT current_user")
    db = _ident(await conn.fetchval("SELECT current_database()"))
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", RUNTIME_ROLE)
    if exists is None:
        try:
            async with conn.transaction():
                await conn.execute(f"CREATE ROLE {RUNTIME_ROLE} NOLOGIN")
        except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
            pass  # created at the same moment by a migration of another database
        except asyncpg.InsufficientPrivilegeError:
            return [
                f"-- notice: role {_ident(me)} may not create roles, so the least-privilege",
                f"-- runtime role {RUNTIME_ROLE} was not created (the service can run as",
                f"-- {_ident(me)} until then).",
                f"-- A DBA (superuser or CREATEROLE) creates it, in database {db}:",
                f"CREATE ROLE {RUNTIME_ROLE} NOLOGIN;",
                "-- then `auth-service migrate` grants it its privileges (runtime_grants.sql),",
                "-- and the service runs as a login role that is a member of it and owns nothing:",
                "-- CREATE ROLE auth_service LOGIN PASSWORD '...';",
                f"-- GRANT {RUNTIME_ROLE} TO auth_service;",
            ]
    try:
        async with conn.transaction():
            await conn.execute(runtime_grants_sql())
    except asyncpg.InsufficientPrivilegeError as exc:
        return [
            f"-- notice: role {_ident(me)} could not grant {RUNTIME_ROLE} its privileges ({exc});",
            f"-- the table owner or a superuser runs, in database {db}:",
            *runtime_grants_sql().splitlines(),
        ]
    return await _runtime_membership(conn, me, runtime_dsn)


async def _runtime_membership(
    conn: asyncpg.Connection, me: str, runtime_dsn: str | None
) -> list[str]:
    if runtime_dsn is None:
        return []
    quoted = urlsplit(runtime_dsn).username
    user = None if quoted is None else unquote(quoted)
    if user is None or user == me:
        return []
    member = await conn.fetchval(
        "SELECT pg_has_role(oid, $2, 'MEMBER') FROM pg_roles WHERE rolname = $1",
        user,
        RUNTIME_ROLE,
    )
    if member is True:
        return []
    what = "does not exist" if member is None else f"is not a member of {RUNTIME_ROLE}"
    return [
        f"-- notice: {_ident(user)}, the role of AUTH_DATABASE_URL, {what}; a DBA runs:",
        *([f"CREATE ROLE {_ident(user)} LOGIN PASSWORD '...';"] if member is None else []),
        f"GRANT {RUNTIME_ROLE} TO {_ident(user)};",
    ]


def _ident(name: str) -> str:
    """``name`` as an SQL identifier (quoted unless it is plain lower case)."""
    if re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'
