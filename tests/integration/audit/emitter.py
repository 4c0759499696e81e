"""A stand-alone audit writer process for the crash and outage tests.

``python -m tests.integration.audit.emitter DSN SPOOL_ROOT COUNT`` emits COUNT
events (yielding to the writer every few events, like a busy worker) and
prints each event id on its own line *after* ``emit`` returned, the moment a
request handler would have sent its response. With COUNT 0 it only starts a
writer, which replays the spools of dead writers, waits until everything is
in PostgreSQL, prints ``IDLE`` and exits cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import asyncpg
import structlog

from auth_service.audit import WriterConfig, open_audit
from tests.support.audit import KEYS


async def main(dsn: str, spool_root: Path, count: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=2)
    config = WriterConfig(batch_size=200, queue_size=2_000)
    async with open_audit(pool, spool_root, keys=KEYS, config=config, aggregate_window=0) as audit:
        out = sys.stdout
        for i in range(count):
            event_id = audit.emit(
                "login.success", outcome="success", actor_sub=f"user-{i}", request_id=f"req-{i}"
            )
            out.write(f"{event_id}\n")
            if i % 20 == 0:
                out.flush()
                await asyncio.sleep(0)
        out.flush()
        writer = audit.sink
        idle = await writer.wait_idle(120)  # type: ignore[attr-defined]
        replayed = int(writer.metrics.replayed._value.get())  # type: ignore[attr-defined]
        print(f"{'IDLE' if idle else 'BUSY'} replayed={replayed}", flush=True)
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])))
