"""PostgreSQL down for 30 s under load: requests are answered, no event lost or doubled."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from litestar import Litestar, Request, get
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from auth_service.audit import AuditLog, start_audit
from auth_service.audit.cli import verify
from auth_service.config import Settings
from auth_service.migrations import apply_migrations
from auth_service.observability.metrics import Metrics
from auth_service.resources import Resources
from tests.conftest import REDIS_URL
from tests.support.pgcluster import PgCluster
from tests.support.processes import wait_until

OUTAGE_SECONDS = 30.0


class AuditSettings:
    """`Settings` plus the ``audit_*`` settings `start_audit` reads (not yet in `Settings`)."""

    def __init__(self, base: Settings, **audit: Any) -> None:
        self._base = base
        self.__dict__.update(audit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    """A private PostgreSQL cluster the test stops and restarts."""
    c = PgCluster().start()
    try:
        yield c
    finally:
        c.destroy()


def build_app(settings: Any) -> Litestar:
    """A worker with the real audit wiring and one route that emits an event per request."""

    logs: list[AuditLog] = []  # the one AuditLog of the running worker

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pg = await asyncpg.create_pool(settings.database_url, min_size=0, max_size=4, timeout=2)
        redis = Redis.from_url(REDIS_URL)
        http = httpx.AsyncClient()
        res = Resources(settings=settings, metrics=Metrics(), pg=pg, redis=redis, http=http)
        async with contextlib.AsyncExitStack() as stack:
            logs.append(await start_audit(res, stack))
            yield
        await http.aclose()
        await redis.aclose()
        await pg.close()

    @get("/login-failed")
    async def login_failed(request: Request[Any, Any, Any]) -> dict[str, str | None]:
        (audit,) = logs
        event_id = audit.emit(
            "login.failure",
            outcome="failure",
            actor_sub="alice",
            reason="bad_password",
            source_ip="192.0.2.7",
            request_id=request.headers.get("x-request-id"),
        )
        return {"id": event_id}

    return Litestar([login_failed], lifespan=[lifespan])


async def _count(dsn: str, ids: list[str]) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT id) AS d FROM audit_events "
            "WHERE id = ANY($1::uuid[])",
            ids,
        )
        assert row is not None
        return row["n"], row["d"]
    finally:
        await conn.close()


async def test_postgres_outage_of_30s_keeps_answering_and_loses_nothing(
    cluster: PgCluster, settings: Settings, tmp_path: Path
) -> None:
    """Requests are answered quickly while PostgreSQL is stopped for 30 s; afterwards every
    acknowledged event is in the table exactly once and the chain verifies."""
    await apply_migrations(cluster.dsn)
    audit_settings = AuditSettings(
        msgspec_replace(settings, database_url=cluster.dsn),
        audit_spool_dir=str(tmp_path / "spool"),
        audit_queue_size=5_000,
    )
    ids: list[str] = []
    slowest = 0.0
    async with AsyncTestClient(build_app(audit_settings)) as client:

        async def request(i: int) -> None:
            nonlocal slowest
            start = time.perf_counter()
            r = await client.get("/login-failed", headers={"X-Request-ID": f"req-{i}"})
            slowest = max(slowest, time.perf_counter() - start)
            assert r.status_code == 200
            event_id = r.json()["id"]
            assert event_id is not None
            ids.append(event_id)

        for i in range(300):
            await request(i)
        cluster.stop()
        outage_start = time.monotonic()
        during = 0
        while time.monotonic() - outage_start < OUTAGE_SECONDS:
            await request(len(ids))
            during += 1
        slowest_during = slowest
        cluster.start()
        for _ in range(300):
            await request(len(ids))

        async def landed() -> bool:
            n, _ = await _count(cluster.dsn, ids)
            return n >= len(ids)

        deadline = time.monotonic() + 120
        while not await landed():
            assert time.monotonic() < deadline, "events did not land after PostgreSQL came back"
            await asyncio.sleep(0.05)  # poll interval; the writer runs meanwhile
    n, distinct = await _count(cluster.dsn, ids)
    assert (n, distinct) == (len(ids), len(ids))
    assert during > 1000, f"only {during} requests answered during the outage"
    assert slowest_during < 1.0, f"a request took {slowest_during:.3f}s during the outage"
    print(
        f"answered {len(ids)} requests, {during} during the outage, slowest {slowest_during:.3f}s"
    )
    code, lines = await verify(cluster.dsn, settings.secret_keys)
    assert code == 0, lines
    wait_until(lambda: not any((tmp_path / "spool").rglob("seg-*.log")), 10, "spool emptied")


def msgspec_replace(settings: Settings, **changes: Any) -> Settings:
    """A copy of ``settings`` with ``changes``."""
    return msgspec.structs.replace(settings, **changes)
