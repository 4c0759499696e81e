"""Replay protection and lockout across real worker processes (production wiring).

These run `auth-service serve --workers 2`: the services each worker builds in
`auth_service.services.build_services`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import httpx
import pyotp

from tests.fakes.keycloak import FakeKeycloak
from tests.integration.mfa.conftest import User, new_user
from tests.support.processes import ServiceProcess, wait_until


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=2.5).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_workers_same_code_concurrently_exactly_one_success(
    idp_env: dict[str, str], idp: FakeKeycloak
) -> None:
    """50 times: a fresh user enrolls, then two simultaneous requests (separate connections,
    spread over 2 workers) present the same valid code: exactly one succeeds each time."""
    with ServiceProcess(idp_env, workers=2) as svc:
        wait_until(lambda: _ready(svc.url), 15, "ready")
        barrier = threading.Barrier(2)

        def send(headers: dict[str, str], code: str) -> int:
            with httpx.Client(base_url=svc.url, timeout=10) as client:
                barrier.wait()
                r = client.post("/mfa/totp/verify", json={"code": code}, headers=headers)
                return r.status_code

        with ThreadPoolExecutor(2) as pool, httpx.Client(base_url=svc.url, timeout=10) as c:
            for i in range(50):
                user = new_user(idp)
                h = {"Authorization": f"Bearer {user.token}", "X-Real-IP": user.ip}
                r = c.post("/mfa/totp/enrollment", headers=h)
                assert r.status_code == 201, r.text
                totp = pyotp.TOTP(r.json()["secret"])
                now = time.time()
                r = c.post("/mfa/totp/enrollment/confirm", json={"code": totp.at(now)}, headers=h)
                assert r.status_code == 200, r.text
                code = totp.at(now + 30)  # the next step: in the window, not yet used
                statuses = sorted(pool.map(lambda _: send(h, code), range(2)))
                assert statuses == [200, 400], (i, statuses)


def _enrolled(url: str, idp: FakeKeycloak) -> tuple[User, dict[str, str], pyotp.TOTP, str]:
    """A fresh enrolled user: the user, its request headers, its TOTP and a wrong code."""
    user = new_user(idp)
    h = {"Authorization": f"Bearer {user.token}", "X-Real-IP": user.ip}
    with httpx.Client(base_url=url, timeout=10) as c:
        r = c.post("/mfa/totp/enrollment", headers=h)
        assert r.status_code == 201, r.text
        totp = pyotp.TOTP(r.json()["secret"])
        r = c.post("/mfa/totp/enrollment/confirm", json={"code": totp.now()}, headers=h)
        assert r.status_code == 200, r.text
    valid = {totp.at(time.time() + 30 * s) for s in (-2, -1, 0, 1, 2)}
    wrong = next(f"{n:06d}" for n in range(100) if f"{n:06d}" not in valid)
    return user, h, totp, wrong


def test_two_workers_share_the_failure_count(idp_env: dict[str, str], idp: FakeKeycloak) -> None:
    """Wrong codes over separate connections (both workers): 1..5 are 400 invalid_code,
    the 6th attempt is 429 with Retry-After."""
    with ServiceProcess(idp_env, workers=2) as svc:
        wait_until(lambda: _ready(svc.url), 15, "ready")
        _, h, _, wrong = _enrolled(svc.url, idp)
        answers = []
        for _ in range(6):
            with httpx.Client(base_url=svc.url, timeout=10) as c:  # new connection each time
                r = c.post("/mfa/totp/verify", json={"code": wrong}, headers=h)
                answers.append((r.status_code, r.json()["reason"]))
        assert answers == [(400, "invalid_code")] * 5 + [(429, "mfa_locked")]
        assert 890 <= int(r.headers["retry-after"]) <= 900


async def _mfa_events(database_url: str, sub: str) -> dict[tuple[str, str | None], int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT type, reason, sum(count) AS n FROM audit_events"
            " WHERE subject_sub = $1 AND type LIKE 'mfa.%' GROUP BY type, reason",
            sub,
        )
    finally:
        await conn.close()
    return {(r["type"], r["reason"]): int(r["n"]) for r in rows}


def test_concurrent_wrong_codes_across_two_workers_check_at_most_five(
    idp_env: dict[str, str], idp: FakeKeycloak, database_url: str
) -> None:
    """100 wrong codes for one user at once, on 100 connections spread over 2 workers: exactly
    5 codes are checked (5 x 400 invalid_code, 5 ``mfa.failure`` audit events, written once the
    server has shut down and flushed), the other 95 are 429 with Retry-After, none is 5xx; the
    user is locked afterwards, even for a valid code."""
    with ServiceProcess(idp_env, workers=2) as svc:
        wait_until(lambda: _ready(svc.url), 15, "ready")
        user, h, totp, wrong = _enrolled(svc.url, idp)
        barrier = threading.Barrier(100)

        def send(_: int) -> tuple[int, str, str | None]:
            with httpx.Client(base_url=svc.url, timeout=30) as client:
                client.get("/health/live")  # connect before the barrier
                barrier.wait()
                r = client.post("/mfa/totp/verify", json={"code": wrong}, headers=h)
                return r.status_code, r.json().get("reason", ""), r.headers.get("retry-after")

        with ThreadPoolExecutor(100) as pool:
            answers = list(pool.map(send, range(100)))
        statuses = sorted(status for status, _, _ in answers)
        assert statuses == [400] * 5 + [429] * 95, statuses
        for status, reason, retry_after in answers:
            if status == 400:
                assert reason == "invalid_code" and retry_after is None
            else:
                assert reason == "mfa_locked" and retry_after is not None
                assert 0 < int(retry_after) <= 900
        with httpx.Client(base_url=svc.url, timeout=10) as c:
            r = c.post("/mfa/totp/verify", json={"code": totp.now()}, headers=h)
            assert r.status_code == 429 and int(r.headers["retry-after"]) > 800
        assert svc.stop() == 0
    events = asyncio.run(_mfa_events(database_url, user.sub))
    assert events[("mfa.failure", "invalid_code")] == 5
    assert events[("mfa.lockout", "too_many_failures")] == 1
    assert ("mfa.success", None) not in events
