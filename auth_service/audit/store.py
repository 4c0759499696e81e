"""SQL of the audit table: idempotent batch insert, partitions, admin query, chain walk.

The batch insert sends one statement per batch with one array per column
(``unnest``), a single round trip whatever the batch size, and skips rows
whose ``(id, occurred_at)`` is already there, so replaying a spool after a
partial write never duplicates an event.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import msgspec

from auth_service.audit.chain import AuditRecord, EventData

__all__ = (
    "AuditEventOut",
    "AuditPage",
    "AuditQuery",
    "InvalidCursor",
    "decode_cursor",
    "encode_cursor",
    "ensure_partitions",
    "from_us",
    "insert_records",
    "iter_chain_records",
    "query_events",
    "to_us",
)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
_json = msgspec.json.Encoder()

INSERT_SQL = """
INSERT INTO audit_events (id, occurred_at, type, outcome, actor_sub, subject_sub, client_id,
                          source_ip, user_agent, request_id, trace_id, reason, details, count,
                          chain_id, seq, prev_hash, hash, key_id)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                     $12::text[], $13::jsonb[], $14::int4[], $15::uuid[], $16::int8[],
                     $17::bytea[], $18::bytea[], $19::text[])
ON CONFLICT DO NOTHING
"""

_COLUMNS = (
    "id, occurred_at, type, outcome, actor_sub, subject_sub, client_id, source_ip, user_agent, "
    "request_id, trace_id, reason, details::text AS details, count, chain_id, seq, prev_hash, "
    "hash, key_id"
)
_FIELDS = AuditRecord.__struct_fields__
_OCCURRED_AT = _FIELDS.index("occurred_at")
_DETAILS = _FIELDS.index("details")


def to_us(value: dt.datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return (value - _EPOCH) // _US


def from_us(us: int) -> dt.datetime:
    """The UTC datetime of microseconds since the epoch."""
    return _EPOCH + dt.timedelta(microseconds=us)


async def insert_records(conn: asyncpg.Connection, records: Sequence[AuditRecord]) -> str:
    """Insert a batch idempotently; returns the command status (``INSERT 0 n``)."""
    # One array per column; INSERT_SQL lists the columns in the fields' order.
    cols: list[list[Any]] = [[] for _ in _FIELDS]
    for r in records:
        for col, value in zip(cols, msgspec.structs.astuple(r), strict=True):
            col.append(value)
    cols[_OCCURRED_AT] = [from_us(us) for us in cols[_OCCURRED_AT]]
    cols[_DETAILS] = [_json.encode(d).decode() for d in cols[_DETAILS]]
    status: str = await conn.execute(INSERT_SQL, *cols)
    return status


async def ensure_partitions(conn: asyncpg.Connection, months_ahead: int = 2) -> int:
    """Create this month's and the next ``months_ahead`` partitions; returns how many were new."""
    created: int = await conn.fetchval("SELECT audit_ensure_partitions(now(), $1)", months_ahead)
    return created


def _record(row: asyncpg.Record) -> AuditRecord:
    return AuditRecord(
        **{
            **dict(row.items()),
            "id": str(row["id"]),
            "occurred_at": to_us(row["occurred_at"]),
            "details": msgspec.json.decode(row["details"]),
            "chain_id": str(row["chain_id"]),
            "prev_hash": bytes(row["prev_hash"]),
            "hash": bytes(row["hash"]),
        }
    )


def _event_out(r: AuditRecord) -> AuditEventOut:
    out = msgspec.structs.asdict(r)
    del out["prev_hash"]
    out.update(occurred_at=from_us(r.occurred_at), hash=r.hash.hex())
    return AuditEventOut(**out)


async def iter_chain_records(conn: asyncpg.Connection) -> AsyncIterator[AuditRecord]:
    """Every stored event ordered by ``(chain_id, seq)``, streamed (call inside a transaction)."""
    query = f"SELECT {_COLUMNS} FROM audit_events ORDER BY chain_id, seq, id"  # noqa: S608
    async for row in conn.cursor(query, prefetch=2000):
        yield _record(row)


class InvalidCursor(ValueError):
    """A ``cursor`` parameter this service did not issue."""


def encode_cursor(occurred_at: dt.datetime, event_id: uuid.UUID | str) -> str:
    """Opaque cursor: the (occurred_at, id) of the last event of a page."""
    raw = msgspec.msgpack.encode([to_us(occurred_at), uuid.UUID(str(event_id)).bytes])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    """Inverse of `encode_cursor`; raises `InvalidCursor`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        us, id_bytes = msgspec.msgpack.decode(raw, type=tuple[int, bytes])
        return from_us(us), uuid.UUID(bytes=id_bytes)
    except (binascii.Error, msgspec.DecodeError, ValueError, OverflowError) as exc:
        raise InvalidCursor("invalid cursor") from exc


class AuditQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Filters of ``GET /admin/audit-events``."""

    type: str | None = None
    subject: str | None = None
    """Matches the actor or the subject ``sub``."""
    request_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 100
    cursor: str | None = None


class AuditEventOut(EventData[dt.datetime], frozen=True):
    """One audit event as the admin API returns it."""

    occurred_at: dt.datetime  # restated (same place) so the OpenAPI schema names the type
    chain_id: str
    seq: int
    hash: str
    """Hex MAC (HMAC-SHA-256) of this link of the chain."""
    key_id: str | None
    """Id of the ``AUTH_SECRET_KEYS`` entry that sealed it (null: old unkeyed event)."""


class AuditPage(msgspec.Struct):
    """A page of events, newest first; pass ``next_cursor`` back for the next page."""

    events: list[AuditEventOut]
    next_cursor: str | None


async def query_events(pool: asyncpg.Pool, q: AuditQuery) -> AuditPage:
    """Run the admin query (keyset pagination on ``(occurred_at, id)``, newest first)."""
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if q.type is not None:
        where.append(f"type = {arg(q.type)}")
    if q.subject is not None:
        p = arg(q.subject)
        where.append(f"(subject_sub = {p} OR actor_sub = {p})")
    if q.request_id is not None:
        where.append(f"request_id = {arg(q.request_id)}")
    if q.since is not None:
        where.append(f"occurred_at >= {arg(q.since)}")
    if q.until is not None:
        where.append(f"occurred_at < {arg(q.until)}")
    if q.cursor is not None:
        at, last_id = decode_cursor(q.cursor)
        where.append(f"(occurred_at, id) < ({arg(at)}, {arg(last_id)})")
    sql = (
        f"SELECT {_COLUMNS} FROM audit_events"  # noqa: S608 - only placeholders are interpolated
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY occurred_at DESC, id DESC LIMIT {arg(q.limit + 1)}"
    )
    rows = await pool.fetch(sql, *args)
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    events = [_event_out(_record(r)) for r in rows]
    cursor = encode_cursor(rows[-1]["occurred_at"], rows[-1]["id"]) if more and rows else None
    return AuditPage(events=events, next_cursor=cursor)
