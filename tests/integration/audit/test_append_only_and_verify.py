"""The table refuses changes, and `audit verify` catches what the owner or a superuser changes
anyway: the chain is keyed with a secret the database does not hold."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import msgspec
import pytest
import structlog

from auth_service.audit import ChainKeys, open_audit
from auth_service.audit.chain import (
    GENESIS,
    AuditRecord,
    EventFields,
    canonical_bytes,
    legacy_hash,
)
from auth_service.audit.store import insert_records, iter_chain_records
from auth_service.config import SecretKey
from tests.support.audit import KEY_1, KEY_2, KEYS, env_value
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


async def _records(conn: asyncpg.Connection) -> list[AuditRecord]:
    async with conn.transaction():
        return [r async for r in iter_chain_records(conn)]


@pytest.mark.parametrize("unkeyed", [False, True], ids=["key-id-kept", "key-id-dropped"])
async def test_owner_rewrite_resealed_with_sha256_is_named(
    fresh_db: str, spool_root: Path, unkeyed: bool
) -> None:
    """The review's attack, as the table owner: disable the trigger, edit an event's actor,
    re-seal the rest of the chain with plain SHA-256 (with or without the key id), delete the
    newest event, enable the trigger. `audit verify` exits 1 naming the edited event."""
    ids = await _fill(fresh_db, spool_root, 12)
    victim = ids[4]
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
        records = await _records(conn)
        prev = records[4].prev_hash
        for r in records[4:]:
            forged = msgspec.structs.replace(
                r,
                actor_sub="mallory" if r.id == victim else r.actor_sub,
                key_id=None if unkeyed else r.key_id,
                prev_hash=prev,
            )
            canonical = canonical_bytes(
                forged, chain_id=r.chain_id, seq=r.seq, key_id=forged.key_id
            )
            digest = hashlib.sha256(prev + canonical).digest()
            await conn.execute(
                "UPDATE audit_events SET actor_sub = $2, key_id = $3, prev_hash = $4, hash = $5 "
                "WHERE id = $1",
                r.id,
                forged.actor_sub,
                forged.key_id,
                prev,
                digest,
            )
            prev = digest
        await conn.execute("DELETE FROM audit_events WHERE id = $1", ids[-1])
        await conn.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
        assert (
            await conn.fetchval("SELECT actor_sub FROM audit_events WHERE id = $1", victim)
            == "mallory"
        )
    finally:
        await conn.close()
    done = _verify(fresh_db)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"event {victim} (seq 5)" in done.stdout
    assert "audit chain BROKEN" in done.stdout


async def _checkpoint_lines(dsn: str, spool_root: Path, n: int) -> tuple[list[str], str]:
    """Fill a chain of ``n`` events; returns the event ids and the logged checkpoints as JSON
    lines (as the log pipeline keeps them), between other log lines."""
    with structlog.testing.capture_logs() as logs:
        ids = await _fill(dsn, spool_root, n)
    lines = [json.dumps({**e, "timestamp": "2026-12-06T00:00:00Z"}) for e in logs]
    assert any(e["event"] == "audit_checkpoint" and e["seq"] == n for e in logs)
    return ids, "\n".join(["not json at all", *lines])


async def test_removed_newest_events_are_found_with_checkpoints(
    fresh_db: str, spool_root: Path, tmp_path: Path
) -> None:
    """Deleting a chain's newest events leaves a valid chain; the logged checkpoints reveal it:
    exit 1 naming the chain and the missing seq range."""
    ids, logged = await _checkpoint_lines(fresh_db, spool_root, 20)
    file = tmp_path / "checkpoints.jsonl"
    file.write_text(logged)
    intact = _verify(fresh_db, "--checkpoints", str(file))
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "checkpoint seq 20 matches" in intact.stdout
    conn = await asyncpg.connect(fresh_db)
    try:
        chain = str(await conn.fetchval("SELECT chain_id FROM audit_events WHERE id = $1", ids[0]))
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("DELETE FROM audit_events WHERE id = ANY($1::uuid[])", ids[17:])
    finally:
        await conn.close()
    without = _verify(fresh_db)
    assert without.returncode == 0, "the table alone cannot show it (why checkpoints exist)"
    done = _verify(fresh_db, "--checkpoints", str(file))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"BROKEN chain {chain}" in done.stdout
    assert "seq 18..20 missing" in done.stdout


async def test_a_whole_chain_removed_is_found_with_checkpoints(
    fresh_db: str, spool_root: Path, tmp_path: Path
) -> None:
    """A chain that checkpoints name but the table no longer holds at all is a break."""
    ids, logged = await _checkpoint_lines(fresh_db, spool_root, 3)
    file = tmp_path / "checkpoints.jsonl"
    file.write_text(logged)
    conn = await asyncpg.connect(fresh_db)
    try:
        chain = str(await conn.fetchval("SELECT chain_id FROM audit_events WHERE id = $1", ids[0]))
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("DELETE FROM audit_events")
    finally:
        await conn.close()
    done = _verify(fresh_db, "--checkpoints", str(file))
    assert done.returncode == 1, done.stdout
    assert f"BROKEN chain {chain}: every event missing (seq 1..3" in done.stdout


async def test_keys_rotate_and_verify_picks_the_key_by_id(fresh_db: str, spool_root: Path) -> None:
    """Events sealed under k1, then under k2 (k1 still listed): all verify while both keys are
    configured; without k1 the first k1 event is named."""
    old = await _fill(fresh_db, spool_root, 4, keys=ChainKeys([KEY_1]))
    await _fill(fresh_db, spool_root, 3, keys=ChainKeys([KEY_2, KEY_1]))
    both = _verify(fresh_db, keys=(KEY_2, KEY_1))
    assert both.returncode == 0, both.stdout + both.stderr
    assert "2 chains, 7 events" in both.stdout
    only_new = _verify(fresh_db, keys=(KEY_2,))
    assert only_new.returncode == 1
    assert f"event {old[0]} (seq 1)" in only_new.stdout
    assert "key id 'a1'" in only_new.stdout
    wrong = _verify(fresh_db, keys=(SecretKey("a1", bytes(32)), KEY_2))
    assert wrong.returncode == 1
    assert f"event {old[0]} (seq 1): content does not match its MAC" in wrong.stdout


async def test_unkeyed_chain_of_the_old_scheme_needs_the_auditors_acceptance(
    fresh_db: str,
) -> None:
    """Rows of the old SHA-256 scheme (key id null) are a break unless the auditor names their
    chain with --accept-unkeyed; accepted, they are still checked with SHA-256."""
    chain, prev, records = str(uuid.uuid4()), GENESIS, []
    for seq in range(1, 4):
        fields = EventFields(
            id=str(uuid.uuid4()), occurred_at=1_780_000_000_000_000 + seq, type="logout",
            outcome="success", actor_sub="old", subject_sub=None, client_id=None,
            source_ip=None, user_agent=None, request_id=None, trace_id=None, reason=None,
            details={}, count=1,
        )  # fmt: skip
        digest = legacy_hash(prev, canonical_bytes(fields, chain_id=chain, seq=seq))
        link = (chain, seq, prev, digest, None)
        records.append(AuditRecord(*msgspec.structs.astuple(fields), *link))
        prev = digest
    conn = await asyncpg.connect(fresh_db)
    try:
        await insert_records(conn, records)
    finally:
        await conn.close()
    refused = _verify(fresh_db)
    assert refused.returncode == 1
    assert f"event {records[0].id} (seq 1): unkeyed" in refused.stdout
    accepted = _verify(fresh_db, "--accept-unkeyed", chain)
    assert accepted.returncode == 0, accepted.stdout
    assert "unkeyed, accepted" in accepted.stdout


def test_verify_without_the_keys_is_a_configuration_error(fresh_db: str) -> None:
    """No AUTH_SECRET_KEYS: exit 2 with one line naming the variable, no verdict."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    env["AUTH_ENV_FILE"] = str(ROOT / "no-such.env")
    done = subprocess.run(
        [sys.executable, "-m", "auth_service.audit.cli", "verify", "--dsn", fresh_db],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "AUTH_SECRET_KEYS" in done.stderr
    assert "intact" not in done.stdout
