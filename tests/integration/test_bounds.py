"""Unauthenticated callers cannot grow the service's memory or Redis (CONTRACT §5, §10).

* every HTTP method is a metrics label only from a closed set: 10,000 made-up
  methods add one ``OTHER`` series per route and status, not 10,000;
* login starts (each one stores a state record in Redis) are limited per client
  address with 429 + ``Retry-After``: 10,000 of them from one address leave at
  most ``AUTH_LOGIN_RATE_LIMIT`` state records and one counter;
* an ``rd`` longer than 2 KiB is refused with 400 before anything is stored.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from auth_service.app import create_app
from auth_service.config import load_settings
from auth_service.errors import PROBLEM_JSON
from tests.fakes.keycloak import FakeKeycloak
from tests.support.processes import eventually

N = 10_000


@pytest.fixture
async def isolated(
    idp_env: dict[str, str], idp: FakeKeycloak, redis_prefix: str
) -> AsyncIterator[tuple[AsyncTestClient[Litestar], str]]:
    """The app, discovered and synced, with a Redis prefix of its own (to count its keys)."""
    prefix = f"{redis_prefix}bounds-{secrets.token_hex(4)}:"
    env = {**idp_env, "AUTH_REDIS_PREFIX": prefix, "AUTH_ACCESS_LOG": "false"}
    del env["AUTH_LOGIN_RATE_LIMIT"]  # the default (30 per 60 s) applies
    app = create_app(load_settings(env, env_file=False), configure_logs=False)
    async with AsyncTestClient(app, base_url="http://auth.test") as client:
        services = app.state.services
        await eventually(
            lambda: services.idp.ready and services.revocations.synced.is_set(),
            "IdP discovery and revocation sync",
        )
        yield client, prefix


async def _count_keys(redis: Redis, prefix: str) -> int:
    return len([k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)])


async def test_ten_thousand_methods_leave_metrics_bounded(
    isolated: tuple[AsyncTestClient[Litestar], str],
) -> None:
    client, _ = isolated
    paths = ("/health/live", "/no/such/route", "/authz/auth-request")
    for path in paths:  # every route/status series exists before measuring
        await client.request("GET", path)
        await client.request("PATCHX", path)
    await client.get("/metrics")  # and the scrape's own series
    before = (await client.get("/metrics")).content
    for i in range(N):
        await client.request(f"M{i:05d}X", paths[i % len(paths)])
    after = (await client.get("/metrics")).content
    print(f"/metrics: {len(before)} bytes before, {len(after)} after {N} distinct methods")
    series = lambda text: {line.rsplit(b" ", 1)[0] for line in text.splitlines()}  # noqa: E731
    assert series(after) == series(before)  # not one new series
    methods = set(re.findall(rb'auth_http_requests_total\{[^}]*method="([^"]*)"', after))
    assert methods <= {b"GET", b"OTHER"}, methods
    assert len(after) - len(before) < 2_000  # only the counts grow (digits)


async def test_ten_thousand_logins_from_one_address_leave_redis_bounded(
    isolated: tuple[AsyncTestClient[Litestar], str], redis_client: Redis
) -> None:
    client, prefix = isolated
    before = await _count_keys(redis_client, prefix)
    statuses: dict[int, int] = {}
    retry_after: set[str] = set()
    for _ in range(N):
        r = await client.get("/auth/login", params={"rd": "/orders/1"}, follow_redirects=False)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        if r.status_code == 429:
            retry_after.add(r.headers["retry-after"])
    after = await _count_keys(redis_client, prefix)
    states = [k async for k in redis_client.scan_iter(match=f"{prefix}login-state:*")]
    print(f"{N} logins from one address: {statuses}; Redis keys {before} -> {after}")
    assert statuses == {302: 30, 429: N - 30}
    assert len(states) == 30
    assert after - before <= 30 + 1  # the state records and one counter
    assert retry_after and all(0 < int(v) <= 60 for v in retry_after)
    r = await client.get("/auth/login", headers={"Accept": "application/json"})
    assert r.status_code == 429
    assert r.headers["content-type"] == PROBLEM_JSON
    assert r.json()["reason"] == "login_rate_limited"
    page = await client.get("/auth/login", headers={"Accept": "text/html"})
    assert page.status_code == 429 and int(page.headers["retry-after"]) > 0
    assert "Too many sign-in attempts" in page.text


async def test_concurrent_logins_pass_the_limit_exactly(
    isolated: tuple[AsyncTestClient[Litestar], str],
) -> None:
    """The count is one atomic Redis step: 100 at once from one address, exactly 30 pass."""
    client, _ = isolated
    answers = await asyncio.gather(
        *(client.get("/auth/login", follow_redirects=False) for _ in range(100))
    )
    codes = sorted(r.status_code for r in answers)
    assert codes.count(302) == 30 and codes.count(429) == 70, codes


async def test_rd_over_2_kib_is_refused_before_anything_is_stored(
    isolated: tuple[AsyncTestClient[Litestar], str], redis_client: Redis
) -> None:
    client, prefix = isolated
    longest = "/" + "a" * 2047
    ok = await client.get("/auth/login", params={"rd": longest}, follow_redirects=False)
    assert ok.status_code == 302
    state = parse_qs(urlsplit(ok.headers["location"]).query)["state"]
    assert state
    before = await _count_keys(redis_client, prefix)
    r = await client.get("/auth/login", params={"rd": longest + "a"})
    assert r.status_code == 400
    assert r.headers["content-type"] == PROBLEM_JSON
    assert r.json()["reason"] == "invalid_redirect"
    assert await _count_keys(redis_client, prefix) == before
