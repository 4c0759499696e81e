"""Audit trail (CONTRACT §9): append-only, hash-chained, never blocking, never lost.

::

    events.py      AuditLog.emit: the API every capability calls; scrub of details
    aggregate.py   denial floods become one event with a count
    chain.py       canonical encoding, per-writer keyed (HMAC) chains, verification
    checkpoints.py chain heads published outside the database (log line, Redis)
    spool.py       durable local spool (segment files, flock'd per writer)
    writer.py      background batch writer, overflow to the spool, replay
    store.py       SQL: idempotent batch insert, partitions, admin query
    controllers.py GET /admin/audit-events, /admin/audit-checkpoints (realm role auth-auditor)
    cli.py         auth-service audit verify
    metrics.py     queue depth, spool size, write latency, batches, failures

`start_audit` is called once per worker by `build_services`; it returns the
`AuditLog` that `auth_service.services.Services` holds as ``audit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import structlog

from auth_service.audit.chain import ChainKeys
from auth_service.audit.checkpoints import (
    CHECKPOINT_INTERVAL,
    CheckpointStore,
    log_checkpoint,
    make_checkpoint,
)
from auth_service.audit.events import AuditEventType, AuditLog, AuditOutcome, scrub
from auth_service.audit.metrics import AuditMetrics
from auth_service.audit.writer import AuditWriter, WriterConfig
from auth_service.resources import Resources

__all__ = (
    "AuditEventType",
    "AuditLog",
    "AuditOutcome",
    "AuditWriter",
    "ChainKeys",
    "WriterConfig",
    "open_audit",
    "scrub",
    "spool_root_for",
    "start_audit",
)

log = structlog.get_logger("auth_service.audit")


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
    keys: ChainKeys,
    config: WriterConfig | None = None,
    aggregate_window: float = 10.0,
    metrics: AuditMetrics | None = None,
    shutdown_timeout: float = 10.0,
    checkpoints: CheckpointStore | None = None,
    checkpoint_interval: float = CHECKPOINT_INTERVAL,
) -> AsyncIterator[AuditLog]:
    """Run an `AuditLog` and its writer for the duration of the block (flushes on exit).

    ``keys`` seal the chain (`ChainKeys` of ``AUTH_SECRET_KEYS``). Every
    ``checkpoint_interval`` seconds, and once after the final flush, the head of
    the chain in PostgreSQL is logged (``audit_checkpoint``) and, with
    ``checkpoints``, stored in Redis for ``GET /admin/audit-checkpoints``.
    """
    metrics = AuditMetrics() if metrics is None else metrics
    writer = AuditWriter(pool, spool_root, keys=keys, config=config, metrics=metrics)
    await writer.start()
    audit = AuditLog(writer, aggregate_window=aggregate_window, metrics=metrics)
    tick_every = max(min(aggregate_window / 4, 1.0), 0.05) if aggregate_window > 0 else 1.0
    tick_every = min(tick_every, checkpoint_interval)

    async def publish() -> None:
        head = writer.checkpoint()
        if head is None:
            return
        cp = make_checkpoint(*head)
        log_checkpoint(cp)
        if checkpoints is not None:
            try:
                async with asyncio.timeout(2.0):
                    await checkpoints.publish(cp)
            except Exception as exc:  # the log line is the primary record
                log.warning("audit_checkpoint_not_stored", error=f"{exc.__class__.__name__}")

    stop = asyncio.Event()

    async def tick() -> None:
        last = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick_every)
            audit.tick()
            if not stop.is_set() and time.monotonic() - last >= checkpoint_interval:
                last = time.monotonic()
                await publish()

    # Stopped by an event, not cancelled: a cancellation that lands inside the Redis
    # publish can be swallowed by the client, and the loop then never ends.
    ticker = asyncio.create_task(tick(), name="audit-aggregation")
    try:
        yield audit
    finally:
        stop.set()
        await ticker
        audit.tick(everything=True)
        await writer.stop(shutdown_timeout)
        await publish()


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
            keys=ChainKeys(s.secret_keys),
            config=config,
            aggregate_window=s.audit_aggregate_window,
            metrics=AuditMetrics(res.metrics),
            shutdown_timeout=s.audit_shutdown_timeout,
            checkpoints=CheckpointStore(res.redis, s.redis_prefix),
        )
    )
    return audit
