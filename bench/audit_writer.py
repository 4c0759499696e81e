"""Benchmark: sustained audit events/s from `emit` into PostgreSQL.

Usage: ``python bench/audit_writer.py [--events N] [--dsn DSN]``. Without
``--dsn`` a scratch database is created on ``AUTH_TEST_DATABASE_URL`` (default
local PostgreSQL), migrated, and dropped afterwards. Events are emitted as fast
as the loop allows (yielding every 100 events so the writer interleaves, as in
a busy worker) and the clock stops when the last one is committed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

from auth_service.audit import ChainKeys, WriterConfig, open_audit
from auth_service.config import SecretKey
from auth_service.migrations import apply_migrations

ADMIN = os.environ.get("AUTH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def run(dsn: str, events: int) -> float:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    keys = ChainKeys([SecretKey("bench", secrets.token_bytes(32))])
    with tempfile.TemporaryDirectory() as spool:
        async with open_audit(
            pool, Path(spool), keys=keys, config=WriterConfig(), aggregate_window=0
        ) as audit:
            start = time.perf_counter()
            for i in range(events):
                audit.emit(
                    "access.allowed",
                    outcome="allowed",
                    actor_sub=f"user-{i % 1000}",
                    client_id="orders-api",
                    source_ip="10.1.2.3",
                    request_id=f"r{i}",
                    user_agent="bench/1.0",
                    reason=None,
                )
                if i % 100 == 0:
                    await asyncio.sleep(0)
            emitted = time.perf_counter() - start
            assert await audit.sink.wait_idle(300)  # type: ignore[attr-defined]
            total = time.perf_counter() - start
    n = await pool.fetchval("SELECT count(*) FROM audit_events")
    await pool.close()
    print(f"emitted {events} in {emitted:.2f}s ({events / emitted:,.0f}/s emit rate)")
    print(
        f"committed {n} in {total:.2f}s -> {events / total:,.0f} events/s sustained into PostgreSQL"
    )
    return events / total


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--dsn", default=None)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.dsn:
        await run(args.dsn, args.events)
        return
    name = f"auth_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = urlunsplit(urlsplit(ADMIN)._replace(path=f"/{name}"))
    try:
        await apply_migrations(dsn)
        await run(dsn, args.events)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
