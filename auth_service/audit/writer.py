"""The background writer: seal → spool → queue → batched idempotent inserts.

Path of one event::

    emit() ──seal (chain)──► spool.append (write(), durable vs. kill -9) ──► deque (bounded)
                                                                                │
    background task: take up to `batch_size` ◄─────────────────────────────────┘
       └─► INSERT ... SELECT unnest(...) ON CONFLICT DO NOTHING ─► release spool segments

* The request never waits for PostgreSQL: `submit` only does CPU work and one
  ``write()``.
* PostgreSQL down or slow: the current batch is retried with backoff; new
  events keep going to the spool. When the in-memory queue is full the writer
  enters *overflow* mode: events are only spooled, and the task reads them
  back from the spool files in order once it has drained the queue, leaving
  overflow when it has caught up with the newest event.
* Crash: the next start (of any worker sharing the spool root) finds the dead
  writer's directory unlocked, adopts it and replays it; the insert skips what
  was already written.
* Shutdown (`stop`): flushes the aggregation windows, then writes until the
  queue and spool are empty or the timeout expires; what is left stays in the
  spool for the next start.
* Spool full (`spool_max_bytes`): events are kept in memory only while the
  queue has room, otherwise dropped (counted, logged as errors); a loud warning
  is logged from 80 % of the cap on.

`submit` may be called from any thread; the task runs on the loop that called
`start`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import threading
import time
import uuid
from pathlib import Path

import asyncpg
import msgspec
import structlog

from auth_service.audit.chain import GENESIS, AuditRecord, ChainKeys, EventFields, seal
from auth_service.audit.metrics import AuditMetrics
from auth_service.audit.spool import OrphanSpool, Spool, find_orphans
from auth_service.audit.store import ensure_partitions, insert_records

__all__ = ("AuditWriter", "WriterConfig")

log = structlog.get_logger("auth_service.audit.writer")
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AuditRecord)
_PARTITION_EVERY = 6 * 3600.0
_ADOPT_EVERY = 15.0
_WARN_EVERY = 60.0


class WriterConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Tuning of one writer (from the ``AUTH_AUDIT_*`` settings)."""

    queue_size: int = 10_000
    """Events held in memory before the writer falls back to reading the spool."""
    batch_size: int = 1_000
    """Most events per INSERT."""
    flush_interval: float = 0.05
    """Longest an idle writer sleeps before looking for work (events also wake it)."""
    fsync_interval: float = 1.0
    """How often the spool is fsync'd when it has new data (machine-crash durability)."""
    write_timeout: float = 10.0
    """Bound on one batch insert (a hung PostgreSQL counts as down)."""
    segment_bytes: int = 8 << 20
    """Size at which a spool segment is rotated."""
    spool_max_bytes: int = 1 << 30
    """Cap of this writer's spool; above it events are kept in memory only or dropped."""
    max_backoff: float = 2.0
    """Longest pause between retries while PostgreSQL is unreachable."""


class AuditWriter:
    """One worker's chain, spool and background writer task."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        spool_root: Path,
        *,
        keys: ChainKeys,
        config: WriterConfig | None = None,
        metrics: AuditMetrics | None = None,
    ) -> None:
        self.pool = pool
        self.keys = keys
        self.config = cfg = WriterConfig() if config is None else config
        self.metrics = AuditMetrics() if metrics is None else metrics
        self.chain_id = str(uuid.uuid4())
        self.spool = Spool(
            spool_root,
            self.chain_id,
            segment_bytes=cfg.segment_bytes,
            max_bytes=cfg.spool_max_bytes,
        )
        self._lock = threading.Lock()
        self._seq = 0
        self._prev = GENESIS
        self._queue: collections.deque[AuditRecord] = collections.deque()
        self._overflow = False
        self._committed = 0
        self._committed_mac = GENESIS
        self._pending: list[AuditRecord] | None = None
        self._orphans: list[OrphanSpool] = []
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._deadline = 0.0
        self._last_warn = 0.0
        self._last_adopt = 0.0
        self._last_partitions = -_PARTITION_EVERY
        self._last_fsync = 0.0
        self.dropped = 0
        """Events that could be neither spooled nor queued."""

    # -- emission side (sync, any thread) ---------------------------------

    def submit(self, fields: EventFields) -> bool:
        """Seal the event into the chain, spool it and queue it; ``False`` if it was dropped."""
        with self._lock:
            seq = self._seq + 1
            record = seal(
                fields, chain_id=self.chain_id, seq=seq, prev_hash=self._prev, keys=self.keys
            )
            spooled = self.spool.append(seq, _encoder.encode(record))
            room = not self._overflow and len(self._queue) < self.config.queue_size
            if room:
                self._queue.append(record)
            elif spooled:
                self._overflow = True
            else:
                self.dropped += 1
                self.metrics.dropped.inc()
                log.error(
                    "audit_event_dropped",
                    audit_id=fields.id,
                    audit_type=fields.type,
                    reason="spool_full",
                )
                return False
            if not spooled:
                self.metrics.unspooled.inc()
            self._seq = seq
            self._prev = record.hash
        self._notify()
        return True

    def _notify(self) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._thread:
            self._wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # loop closed
                loop.call_soon_threadsafe(self._wake.set)

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Open the spool, adopt orphaned spools and start the background task."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self.spool.open()
        self._adopt()
        self._task = asyncio.create_task(self._run(), name=f"audit-writer-{self.chain_id}")

    async def stop(self, timeout: float = 10.0) -> bool:
        """Write what is left (until ``timeout``); returns whether everything reached PostgreSQL."""
        if self._task is None:
            return self.idle
        self._stopping = True
        self._deadline = time.monotonic() + timeout
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        done = self.idle
        await self._fsync()
        for orphan in self._orphans:
            orphan.release()
        self._orphans.clear()
        self.spool.close(remove=done)
        self._loop = None
        if not done:
            log.warning(
                "audit_left_in_spool", events=self._seq - self._committed, dir=str(self.spool.dir)
            )
        return done

    @property
    def idle(self) -> bool:
        """Every event emitted so far (and every adopted spool) is in PostgreSQL."""
        return self._committed == self._seq and not self._orphans

    @property
    def last_seq(self) -> int:
        """Seq of the newest event of this writer's chain."""
        return self._seq

    @property
    def committed_seq(self) -> int:
        """Every event of this chain up to this seq is in PostgreSQL."""
        return self._committed

    def checkpoint(self) -> tuple[str, int, bytes, str] | None:
        """``(chain_id, seq, MAC, key_id)`` of the newest event of this chain in PostgreSQL.

        ``None`` before the first event reached PostgreSQL. Published outside the
        database (`auth_service.audit.checkpoints`), it lets `audit verify` notice
        that the newest events were removed.
        """
        with self._lock:
            if self._committed == 0:
                return None
            return self.chain_id, self._committed, self._committed_mac, self.keys.primary_id

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until `idle` (for tests and shutdown paths); ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while not self.idle:
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            await asyncio.sleep(0.01)
        return True

    # -- background task -----------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            if self._stopping and (self.idle or time.monotonic() > self._deadline):
                return
            if backoff:
                await asyncio.sleep(backoff)  # not woken by new events: no retry storm
            elif not self._has_work():
                await self._idle_wait(self.config.flush_interval)
            await self._housekeeping()
            try:
                await self._write_once()
                backoff = 0.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.failures.inc()
                backoff = min(max(backoff * 2, 0.05), self.config.max_backoff)
                log.warning(
                    "audit_write_failed", error=f"{exc.__class__.__name__}: {exc}", retry_in=backoff
                )

    async def _idle_wait(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    def _has_work(self) -> bool:
        return bool(self._pending or self._queue or self._overflow or self._orphans)

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        self.metrics.queue_depth.set(len(self._queue))
        self.metrics.spool_bytes.set(self.spool.size)
        if now - self._last_fsync >= self.config.fsync_interval:
            self._last_fsync = now
            await self._fsync()
        if now - self._last_adopt >= _ADOPT_EVERY:
            self._adopt()
        cap = self.config.spool_max_bytes
        if self.spool.size >= 0.8 * cap and now - self._last_warn >= _WARN_EVERY:
            self._last_warn = now
            log.warning("audit_spool_near_cap", spool_bytes=self.spool.size, cap_bytes=cap)

    async def _fsync(self) -> None:
        with self._lock:
            fd = self.spool.take_dirty_fd()
        if fd is None:
            return
        try:
            await asyncio.to_thread(os.fdatasync, fd)
        except OSError as exc:
            log.error("audit_spool_fsync_failed", error=str(exc))
        finally:
            os.close(fd)

    def _adopt(self) -> None:
        self._last_adopt = time.monotonic()
        exclude = frozenset({self.chain_id} | {o.dir.name for o in self._orphans})
        for orphan in find_orphans(self.spool.root, exclude=exclude):
            log.info("audit_spool_adopted", dir=str(orphan.dir), bytes=orphan.size())
            self._orphans.append(orphan)

    async def _write_once(self) -> None:
        if self._orphans:
            await self._replay(self._orphans[0])
            self._orphans.pop(0).remove()
            return
        if self._pending is None:
            self._pending = self._take_batch()
        if not self._pending:
            self._pending = None
            return
        batch = self._pending
        await self._insert(batch)
        self._pending = None
        with self._lock:
            self._committed = batch[-1].seq
            self._committed_mac = batch[-1].hash
            self.spool.release_through(self._committed)

    def _take_batch(self) -> list[AuditRecord]:
        size = self.config.batch_size
        with self._lock:
            batch = [self._queue.popleft() for _ in range(min(size, len(self._queue)))]
            if batch or not self._overflow:
                return batch
            frames = self.spool.read_from(self._committed + 1, size)
            batch = [_decoder.decode(payload) for _, payload in frames]
            if not batch or batch[-1].seq == self._seq:
                self._overflow = False
            return batch

    async def _replay(self, orphan: OrphanSpool) -> None:
        batch: list[AuditRecord] = []
        replayed = 0
        for _, payload in orphan.frames():
            batch.append(_decoder.decode(payload))
            if len(batch) >= self.config.batch_size:
                await self._insert(batch)
                replayed += len(batch)
                batch = []
        if batch:
            await self._insert(batch)
            replayed += len(batch)
        self.metrics.replayed.inc(replayed)
        log.info("audit_spool_replayed", dir=str(orphan.dir), events=replayed)

    async def _insert(self, batch: list[AuditRecord]) -> None:
        start = time.perf_counter()
        async with asyncio.timeout(self.config.write_timeout), self.pool.acquire() as conn:
            if time.monotonic() - self._last_partitions >= _PARTITION_EVERY:
                await ensure_partitions(conn)
                self._last_partitions = time.monotonic()
            await insert_records(conn, batch)
        self.metrics.write_seconds.observe(time.perf_counter() - start)
        self.metrics.batches.inc()
        self.metrics.written.inc(len(batch))
