"""Audit trail (CONTRACT §9): append-only, hash-chained, never blocking, never lost.

::

    events.py      AuditLog.emit: the API every capability calls; scrub of details
    aggregate.py   denial floods become one event with a count
    chain.py       canonical encoding, per-writer hash chains, verification
    spool.py       durable local spool (segment files, flock'd per writer)
    writer.py      background batch writer, overflow to the spool, replay
    store.py       SQL: idempotent batch insert, partitions, admin query
    controllers.py GET /admin/audit-events (realm role auth-auditor)
    cli.py         auth-service audit verify
    metrics.py     queue depth, spool size, write latency, batches, failures

`start_audit` is called once per worker by `build_services`; it returns the
`AuditLog` that `auth_service.services.Services` holds as ``audit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from auth_service.audit.events import AuditEventType, AuditLog, AuditOutcome, scrub
from auth_service.audit.metrics import AuditMetrics
from auth_service.audit.writer import AuditWriter, WriterConfig
from auth_service.resources import Resources

__all__ = (
    "AuditEventType",
    "AuditLog",
    "AuditOutcome",
    "AuditWriter",
    "WriterConfig",
    "open_audit",
    "scrub",
    "spool_root_for",
    "start_audit",
)


def spool_root_for(spool_dir: str | Path, database_url: str) -> Path:
    """The spool root of one database: ``<spool_dir>/<hash of host, port and db name>``.

    Keying by database means a spool is only ever replayed into the database its
    events were meant for, even when several deployments share a host path.
    """
    parts = urlsplit(database_url)
    ident = f"{parts.hostname}:{parts.port}{parts.path}" if parts.scheme else database_url
    return Path(spool_dir) / hashlib.sha256(ident.encode()).hexdigest()[:16]


@contextlib.asynccontextmanager
async def open_audit(
    pool: asyncpg.Pool,
    spool_root: Path,
    *,
    config: WriterConfig | None = None,
    aggregate_window: float = 10.0,
    metrics: AuditMetrics | None = None,
    shutdown_timeout: float = 10.0,
) -> AsyncIterator[AuditLog]:
    """Run an `AuditLog` and its writer for the duration of the block (flushes on exit)."""
    metrics = AuditMetrics() if metrics is None else metrics
    writer = AuditWriter(pool, spool_root, config=config, metrics=metrics)
    await writer.start()
    audit = AuditLog(writer, aggregate_window=aggregate_window, metrics=metrics)
    tick_every = max(min(aggregate_window / 4, 1.0), 0.05) if aggregate_window > 0 else 1.0

    async def tick() -> None:
        while True:
            await asyncio.sleep(tick_every)
            audit.tick()

    ticker = asyncio.create_task(tick(), name="audit-aggregation")
    try:
        yield audit
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        audit.tick(everything=True)
        await writer.stop(shutdown_timeout)


async def start_audit(res: Resources, stack: contextlib.AsyncExitStack) -> AuditLog:
    """Start this worker's audit writer; its shutdown (flush) goes on ``stack``."""
    s = res.settings
    config = WriterConfig(
        queue_size=s.audit_queue_size,
        batch_size=s.audit_batch_size,
        flush_interval=s.audit_flush_interval,
        fsync_interval=s.audit_fsync_interval,
        write_timeout=s.audit_write_timeout,
        segment_bytes=s.audit_spool_segment_bytes,
        spool_max_bytes=s.audit_spool_max_bytes,
    )
    root = spool_root_for(s.audit_spool_dir, s.database_url)
    audit: AuditLog = await stack.enter_async_context(
        open_audit(
            res.pg,
            root,
            config=config,
            aggregate_window=s.audit_aggregate_window,
            metrics=AuditMetrics(res.metrics),
            shutdown_timeout=s.audit_shutdown_timeout,
        )
    )
    return audit
