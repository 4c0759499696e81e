"""``GET /admin/audit-events``: auth, role, filters, and stable cursor pagination."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from auth_service.app import create_app
from auth_service.audit import AuditLog, open_audit
from auth_service.audit.checkpoints import CheckpointStore
from auth_service.config import load_settings
from auth_service.services import Services
from tests.conftest import REDIS_URL
from tests.fakes.keycloak import FakeKeycloak
from tests.support.audit import KEY_1, KEYS, env_value
from tests.support.processes import ROOT, eventually

Api = tuple[AsyncTestClient[Litestar], AuditLog, dict[str, str]]
"""The app, a writer of events into its database, and the auditor's headers."""


@pytest.fixture
async def api(
    fresh_db: str,
    idp_env: dict[str, str],
    redis_prefix: str,
    idp: FakeKeycloak,
    spool_root: Path,
) -> AsyncIterator[Api]:
    """The app (built as ``serve`` builds it) on a private database and Redis prefix, a
    writer of events into that database publishing checkpoints every 0.2 s, and the headers
    of the stand-in's auditor (``admin``)."""
    prefix = f"{redis_prefix}{uuid.uuid4().hex[:8]}:"
    settings = load_settings(
        {**idp_env, "AUTH_DATABASE_URL": fresh_db, "AUTH_REDIS_PREFIX": prefix}, env_file=False
    )
    app = create_app(settings, configure_logs=False)
    pool = await asyncpg.create_pool(fresh_db, min_size=0, max_size=4)
    redis = Redis.from_url(REDIS_URL)
    try:
        async with (
            open_audit(
                pool,
                spool_root,
                keys=KEYS,
                aggregate_window=0,
                checkpoints=CheckpointStore(redis, prefix),
                checkpoint_interval=0.2,
            ) as audit,
            AsyncTestClient(app) as client,
        ):
            services: Services = app.state.services
            await eventually(lambda: services.idp.ready, "IdP discovery")
            auditor = {"Authorization": f"Bearer {idp.mint_access_token('admin')}"}
            yield client, audit, auditor
    finally:
        await redis.aclose()
        await pool.close()


async def _emit_many(audit: AuditLog, n: int) -> list[str]:
    ids = []
    for i in range(n):
        event_id = audit.emit("login.success", outcome="success", actor_sub=f"user-{i % 3}")
        assert event_id is not None
        ids.append(event_id)
    assert await audit.sink.wait_idle(10)  # type: ignore[attr-defined]
    return ids


async def test_without_a_token_is_401(api: Api) -> None:
    """No bearer token: 401 problem+json with WWW-Authenticate."""
    client, _, _ = api
    r = await client.get("/admin/audit-events")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_without_the_auditor_role_is_403(api: Api, idp: FakeKeycloak) -> None:
    """A valid token without the realm role ``auth-auditor``: 403 with reason missing_role."""
    client, _, _ = api
    bob = {"Authorization": f"Bearer {idp.mint_access_token('bob')}"}
    r = await client.get("/admin/audit-events", headers=bob)
    assert r.status_code == 403
    assert r.json()["reason"] == "missing_role"


async def test_filters_by_type_subject_request_id_and_time(
    api: Api,
) -> None:
    """``type``, ``subject`` (actor or subject sub), ``request_id``, ``since``/``until`` filter."""
    client, audit, auditor = api
    audit.emit("mfa.failure", outcome="failure", actor_sub="carol", request_id="rid-c")
    audit.emit("mfa.admin_reset", outcome="success", actor_sub="admin", subject_sub="carol")
    audit.emit("login.success", outcome="success", actor_sub="dave", request_id="rid-d")
    assert await audit.sink.wait_idle(10)  # type: ignore[attr-defined]

    async def get(**params: str) -> list[dict[str, Any]]:
        r = await client.get("/admin/audit-events", params=params, headers=auditor)
        assert r.status_code == 200, r.text
        events: list[dict[str, Any]] = r.json()["events"]
        return events

    assert [e["type"] for e in await get(subject="carol")] == ["mfa.admin_reset", "mfa.failure"]
    assert [e["actor_sub"] for e in await get(type="login.success")] == ["dave"]
    assert [e["actor_sub"] for e in await get(request_id="rid-c")] == ["carol"]
    everything = await get()
    middle = everything[1]["occurred_at"]
    assert [e["type"] for e in await get(since=middle)] == ["login.success", "mfa.admin_reset"]
    assert [e["type"] for e in await get(until=middle)] == ["mfa.failure"]
    first = everything[0]
    assert first["request_id"] == "rid-d" and len(first["hash"]) == 64 and first["seq"] == 3


async def test_pagination_has_no_gaps_or_repeats_while_events_arrive(
    api: Api,
) -> None:
    """Walking pages newest-first while new events keep arriving visits each old event once."""
    client, audit, auditor = api
    existing = await _emit_many(audit, 250)
    stop = threading.Event()
    inserted = 0

    def keep_inserting() -> None:  # emit is thread-safe; this runs truly concurrently
        nonlocal inserted
        while not stop.wait(0.001):
            audit.emit("access.allowed", outcome="allowed", actor_sub="late")
            inserted += 1

    inserter = threading.Thread(target=keep_inserting)
    inserter.start()
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "17", **({"cursor": cursor} if cursor else {})}
        r = await client.get("/admin/audit-events", params=params, headers=auditor)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [e["id"] for e in body["events"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    stop.set()
    inserter.join()
    assert inserted > 0 and pages > 10
    assert len(seen) == len(set(seen)), "an event was returned twice"
    assert set(existing) <= set(seen), "an event was skipped"


async def test_bad_cursor_is_400(api: Api) -> None:
    """A cursor this service did not issue is a 400, not a 500."""
    client, _, auditor = api
    r = await client.get("/admin/audit-events", params={"cursor": "!!nope"}, headers=auditor)
    assert r.status_code == 400
    assert r.json()["reason"] == "invalid_cursor"


@pytest.mark.parametrize("user", [None, "bob"])
async def test_checkpoints_need_the_auditor_role(
    api: Api, idp: FakeKeycloak, user: str | None
) -> None:
    """``/admin/audit-checkpoints`` has the same guard as the events: 401 without a token,
    403 without ``auth-auditor``."""
    client, _, _ = api
    token = None if user is None else idp.mint_access_token(user)
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    r = await client.get("/admin/audit-checkpoints", headers=headers)
    assert r.status_code == (401 if token is None else 403)
    assert r.headers["content-type"] == "application/problem+json"


async def test_checkpoints_endpoint_serves_each_chains_head_and_verify_reads_it(
    api: Api, fresh_db: str, tmp_path: Path
) -> None:
    """While the writer runs, the endpoint shows its chain's head within the interval; its JSON,
    saved to a file, lets `audit verify --checkpoints` find the newest events removed."""
    client, audit, auditor = api
    ids = await _emit_many(audit, 6)
    chain = audit.sink.chain_id  # type: ignore[attr-defined]
    body: dict[str, Any] = {}

    async def published() -> bool:
        r = await client.get("/admin/audit-checkpoints", headers=auditor)
        assert r.status_code == 200, r.text
        body.update(r.json())
        return any(c["chain_id"] == chain and c["seq"] == 6 for c in body["checkpoints"])

    deadline = time.monotonic() + 10
    while not await published():  # bounded poll: the ticker publishes every 0.2 s
        assert time.monotonic() < deadline, f"no checkpoint of seq 6 published: {body}"
        await asyncio.sleep(0.05)
    (head,) = [c for c in body["checkpoints"] if c["chain_id"] == chain]
    assert head["seq"] == 6 and head["key_id"] == KEYS.primary_id and len(head["mac"]) == 64
    file = tmp_path / "checkpoints.json"
    file.write_text(msgspec.json.encode(body).decode())
    conn = await asyncpg.connect(fresh_db)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("DELETE FROM audit_events WHERE id = ANY($1::uuid[])", ids[4:])
    finally:
        await conn.close()
    env = {**os.environ, "AUTH_SECRET_KEYS": env_value(KEY_1), "AUTH_ENV_FILE": "/nonexistent"}
    done = subprocess.run(
        [sys.executable, "-m", "auth_service.audit.cli", "verify", "--dsn", fresh_db,
         "--checkpoints", str(file)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"BROKEN chain {chain}" in done.stdout and "seq 5..6 missing" in done.stdout
