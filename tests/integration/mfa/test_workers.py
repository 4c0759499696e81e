"""Replay protection and lockout across real worker processes (production wiring).

These run `auth-service serve --workers 2`: the services each worker builds in
`auth_service.services.build_services`.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pyotp

from tests.fakes.keycloak import FakeKeycloak
from tests.integration.mfa.conftest import new_user
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


def test_two_workers_share_the_failure_count(idp_env: dict[str, str], idp: FakeKeycloak) -> None:
    """Five wrong codes over separate connections (both workers) lock the user: 429."""
    with ServiceProcess(idp_env, workers=2) as svc:
        wait_until(lambda: _ready(svc.url), 15, "ready")
        user = new_user(idp)
        h = {"Authorization": f"Bearer {user.token}", "X-Real-IP": user.ip}
        with httpx.Client(base_url=svc.url, timeout=10) as c:
            r = c.post("/mfa/totp/enrollment", headers=h)
            assert r.status_code == 201, r.text
            totp = pyotp.TOTP(r.json()["secret"])
            assert (
                c.post(
                    "/mfa/totp/enrollment/confirm", json={"code": totp.now()}, headers=h
                ).status_code
                == 200
            )
        valid = {totp.at(time.time() + 30 * s) for s in (-2, -1, 0, 1, 2)}
        wrong = next(f"{n:06d}" for n in range(100) if f"{n:06d}" not in valid)
        statuses = []
        for _ in range(5):
            with httpx.Client(base_url=svc.url, timeout=10) as c:  # new connection each time
                statuses.append(
                    c.post("/mfa/totp/verify", json={"code": wrong}, headers=h).status_code
                )
        assert statuses == [400] * 4 + [429]
