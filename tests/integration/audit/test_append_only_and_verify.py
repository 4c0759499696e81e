"""The table refuses changes, and `audit verify` catches what the owner or a superuser changes
anyway: the chain is keyed with a secret the database does not hold."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from auth_service.audit import ChainKeys, open_audit
from auth_service.config import SecretKey
from tests.support.audit import KEY_1, KEYS, env_value
from tests.support.processes import ROOT


async def _fill(dsn: str, spool_root: Path, n: int, keys: ChainKeys = KEYS) -> list[str]:
    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=2)
    try:
        async with open_audit(pool, spool_root, keys=keys, aggregate_window=0) as audit:
            ids = [
                audit.emit("mfa.success", outcome="success", actor_sub=f"u{i}", request_id=f"r{i}")
                for i in range(n)
            ]
        return [i for i in ids if i is not None]
    finally:
        await pool.close()


def _verify(
    dsn: str, *args: str, keys: tuple[SecretKey, ...] = (KEY_1,)
) -> subprocess.CompletedProcess[str]:
    """``auth-service audit verify`` in its own process, keys from ``AUTH_SECRET_KEYS``."""
    env = {
        **os.environ,
        "AUTH_SECRET_KEYS": env_value(*keys),
        "AUTH_ENV_FILE": str(ROOT / "no-such.env"),
    }
    return subprocess.run(
        [sys.executable, "-m", "auth_service.audit.cli", "verify", "--dsn", dsn, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET reason = 'x'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ],
)
async def test_service_role_cannot_change_events(
    fresh_db: str, spool_root: Path, statement: str
) -> None:
    """As ``auth_app`` (the service's role) UPDATE, DELETE and TRUNCATE are refused; INSERT
    and SELECT work."""
    await _fill(fresh_db, spool_root, 3)
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute("SET ROLE auth_app")
        assert await conn.fetchval("SELECT count(*) FROM audit_events") == 3
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_events SET reason = 'x'", "DELETE FROM audit_events", "TRUNCATE audit_events"],
)
async def test_even_the_owner_cannot_change_events(
    fresh_db: str, spool_root: Path, statement: str
) -> None:
    """The append-only trigger refuses UPDATE, DELETE and TRUNCATE for every role."""
    await _fill(fresh_db, spool_root, 2)
    conn = await asyncpg.connect(fresh_db)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM audit_events") == 2
    finally:
        await conn.close()


async def test_service_role_can_write_through_the_writer(fresh_db: str, spool_root: Path) -> None:
    """A writer whose connections run as ``auth_app`` inserts events and creates partitions."""
    pool = await asyncpg.create_pool(
        fresh_db, min_size=0, max_size=2, server_settings={"role": "auth_app"}
    )
    try:
        async with open_audit(pool, spool_root, keys=KEYS, aggregate_window=0) as audit:
            event_id = audit.emit("logout", outcome="success", actor_sub="bob")
            assert await audit.sink.wait_idle(10)  # type: ignore[attr-defined]
        assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE id = $1", event_id) == 1
    finally:
        await pool.close()


async def test_verify_intact_chain_exits_0(fresh_db: str, spool_root: Path) -> None:
    """`audit verify` exits 0 and reports every chain as ok when nothing was touched."""
    await _fill(fresh_db, spool_root, 50)
    await _fill(fresh_db, spool_root, 20)
    done = _verify(fresh_db)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "audit chain intact: 2 chains, 70 events" in done.stdout


async def test_verify_names_a_tampered_event_and_exits_1(fresh_db: str, spool_root: Path) -> None:
    """A row edited by a superuser (trigger bypassed) makes `audit verify` exit 1 naming it."""
    ids = await _fill(fresh_db, spool_root, 30)
    victim = ids[12]
    conn = await asyncpg.connect(fresh_db)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                "UPDATE audit_events SET actor_sub = 'mallory' WHERE id = $1", victim
            )
    finally:
        await conn.close()
    done = _verify(fresh_db)
    assert done.returncode == 1, done.stdout
    assert f"event {victim} (seq 13)" in done.stdout
    assert "modified or re-sealed" in done.stdout


async def test_verify_catches_a_deleted_row_in_the_middle(fresh_db: str, spool_root: Path) -> None:
    """Deleting an event from the middle of a chain is a seq gap: exit 1 naming the next event."""
    ids = await _fill(fresh_db, spool_root, 30)
    conn = await asyncpg.connect(fresh_db)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("DELETE FROM audit_events WHERE id = $1", ids[9])
    finally:
        await conn.close()
    done = _verify(fresh_db)
    assert done.returncode == 1, done.stdout
    assert f"event {ids[10]} (seq 11)" in done.stdout
    assert "missing" in done.stdout


async def test_verify_catches_a_relinked_chain(fresh_db: str, spool_root: Path) -> None:
    """Rewriting a row *and* its hash still breaks the link to the next event."""
    ids = await _fill(fresh_db, spool_root, 10)
    conn = await asyncpg.connect(fresh_db)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("UPDATE audit_events SET hash = sha256(hash) WHERE id = $1", ids[4])
    finally:
        await conn.close()
    done = _verify(fresh_db)
    assert done.returncode == 1
    assert f"event {ids[4]} (seq 5)" in done.stdout
