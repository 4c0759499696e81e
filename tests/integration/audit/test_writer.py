"""The writer against real PostgreSQL: context ids, scrubbing, aggregation, overflow, adoption."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import msgspec
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from auth_service.audit import AuditWriter, WriterConfig, open_audit
from auth_service.audit.chain import GENESIS, EventFields, seal
from auth_service.audit.spool import Spool
from auth_service.audit.store import insert_records
from tests.support.audit import KEYS


class LoginDetails(msgspec.Struct):
    """Details a careless capability might pass."""

    method: str
    access_token: str
    nested: dict[str, str]


def _logout(actor_sub: str, *, occurred_at: int) -> EventFields:
    """A successful logout of ``actor_sub`` with a fresh id and no other data."""
    return EventFields(
        id=str(uuid.uuid4()),
        occurred_at=occurred_at,
        type="logout",
        outcome="success",
        actor_sub=actor_sub,
        subject_sub=None,
        client_id=None,
        source_ip=None,
        user_agent=None,
        request_id=None,
        trace_id=None,
        reason=None,
        details={},
        count=1,
    )


async def test_ids_come_from_context_and_secrets_never_reach_the_table(
    pool: asyncpg.Pool, spool_root: Path
) -> None:
    """Request id from structlog contextvars, trace id from the OTel span; token-like details
    are redacted before the event is stored."""
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    tracer = TracerProvider().get_tracer("test")
    async with open_audit(pool, spool_root, keys=KEYS, aggregate_window=0) as audit:
        with (
            structlog.contextvars.bound_contextvars(request_id="rid-ctx-1"),
            tracer.start_as_current_span("req") as span,
        ):
            event_id = audit.emit(
                "login.success",
                outcome="success",
                actor_sub="alice",
                user_agent=f"curl Bearer {jwt}",
                details=LoginDetails(method="pkce", access_token=jwt, nested={"note": jwt}),
            )
            trace_id = format(span.get_span_context().trace_id, "032x")
        assert await audit.sink.wait_idle(10)  # type: ignore[attr-defined]
    row = await pool.fetchrow(
        "SELECT *, details::text AS d FROM audit_events WHERE id = $1", event_id
    )
    assert row["request_id"] == "rid-ctx-1"
    assert row["trace_id"] == trace_id
    assert "eyJ" not in row["d"] and "eyJ" not in row["user_agent"]
    assert msgspec.json.decode(row["d"]) == {
        "method": "pkce",
        "access_token": "[REDACTED]",
        "nested": {"note": "[REDACTED]"},
    }
    assert trace.get_current_span().get_span_context().is_valid is False


async def test_flood_of_denials_becomes_one_event_with_a_count(
    pool: asyncpg.Pool, spool_root: Path
) -> None:
    """1,000 identical token rejections from one source: the first is written, the rest are
    one summary event carrying the count (written at the latest on shutdown)."""
    ip = f"198.51.100.{uuid.uuid4().int % 250}"
    reason = f"token_expired-{uuid.uuid4().hex[:6]}"
    async with open_audit(pool, spool_root, keys=KEYS, aggregate_window=60) as audit:
        written = [
            audit.emit("token.rejected", outcome="denied", reason=reason, source_ip=ip)
            for _ in range(1000)
        ]
    assert sum(1 for w in written if w is not None) == 1
    rows = await pool.fetch(
        "SELECT count, details FROM audit_events WHERE reason = $1 ORDER BY seq", reason
    )
    assert [r["count"] for r in rows] == [1, 999]
    assert '"aggregated": true' in rows[1]["details"]


async def test_queue_overflow_falls_back_to_the_spool_and_loses_nothing(
    pool: asyncpg.Pool, spool_root: Path
) -> None:
    """With a tiny queue, a burst overflows to the spool; all events still land, in one chain."""
    config = WriterConfig(queue_size=10, batch_size=50)
    async with open_audit(pool, spool_root, keys=KEYS, config=config, aggregate_window=0) as audit:
        ids = [
            audit.emit("introspection", outcome="success", client_id="orders") for _ in range(2_000)
        ]
        assert await audit.sink.wait_idle(30)  # type: ignore[attr-defined]
    n = await pool.fetchval("SELECT count(*) FROM audit_events WHERE id = ANY($1::uuid[])", ids)
    assert n == 2_000
    assert not list(spool_root.rglob("seg-*"))


async def test_spool_of_a_dead_writer_is_adopted_and_replayed_once(
    pool: asyncpg.Pool, spool_root: Path
) -> None:
    """A spool left unlocked (its writer died) is replayed by the next writer; events already
    written are skipped, not duplicated; the directory is removed afterwards."""
    chain = str(uuid.uuid4())
    dead = Spool(spool_root, chain)
    dead.open()
    prev, records = GENESIS, []
    for seq in range(1, 101):
        fields = _logout("zed", occurred_at=1_700_000_000_000_000 + seq)
        r = seal(fields, chain_id=chain, seq=seq, prev_hash=prev, keys=KEYS)
        prev = r.hash
        records.append(r)
        assert dead.append(seq, msgspec.msgpack.encode(r))
    async with pool.acquire() as conn:
        await insert_records(conn, records[:40])  # a partial write before the "crash"
    dead.close(remove=False)  # releases the lock, as process death would

    writer = AuditWriter(pool, spool_root, keys=KEYS)
    await writer.start()
    assert await writer.wait_idle(20)
    await writer.stop()
    rows = await pool.fetch("SELECT seq FROM audit_events WHERE chain_id = $1 ORDER BY seq", chain)
    assert [r["seq"] for r in rows] == list(range(1, 101))
    assert not (spool_root / chain).exists()
    assert writer.metrics.replayed._value.get() == 100


async def test_live_writers_do_not_adopt_each_other(pool: asyncpg.Pool, spool_root: Path) -> None:
    """Two writers sharing a spool root keep their own spools: a locked spool is not an orphan."""
    a = AuditWriter(pool, spool_root, keys=KEYS)
    b = AuditWriter(pool, spool_root, keys=KEYS)
    await a.start()
    await b.start()
    assert not a._orphans and not b._orphans
    await a.stop()
    await b.stop()


async def test_full_spool_keeps_events_in_memory_then_drops_and_counts(
    pool: asyncpg.Pool, spool_root: Path
) -> None:
    """At the spool cap events are kept in memory while the queue has room, then dropped and
    counted; nothing raises into the caller."""
    config = WriterConfig(spool_max_bytes=2_000, queue_size=20)
    writer = AuditWriter(pool, spool_root, keys=KEYS, config=config)
    await writer.start()
    kept = [writer.submit(_logout("x", occurred_at=1)) for _ in range(60)]
    assert kept.count(False) > 0 and writer.dropped == kept.count(False)
    assert writer.metrics.unspooled._value.get() > 0
    assert await writer.wait_idle(10)
    await writer.stop()
