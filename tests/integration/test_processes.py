"""`auth-service serve` as real processes: readiness, cross-worker revocation, shutdown."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.fakes.keycloak import FakeKeycloak, StandInServer
from tests.support.processes import RedisProcess, ServiceProcess, wait_until

ORIGINAL = {"X-Original-URL": "https://app.test/orders/1", "X-Original-Method": "GET"}


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    """A redis-server of this test's own, which it may stop and start."""
    with RedisProcess() as r:
        yield r


def _ready(url: str) -> httpx.Response:
    return httpx.get(f"{url}/health/ready", timeout=2.5)


def test_ready_names_redis_when_it_stops_and_recovers_by_itself(
    idp_env: dict[str, str], private_redis: RedisProcess
) -> None:
    """Ready is ok; ``degraded`` (200) naming redis within 2 s once synced; ok again after.

    Redis lost after the revocation mirror synchronised is not a reason to take the
    worker out (CONTRACT §10): the last known revocations stay in force.
    """
    env = {**idp_env, "AUTH_REDIS_URL": private_redis.url}
    with ServiceProcess(env) as svc:
        wait_until(lambda: _ready(svc.url).json()["status"] == "ok", 20, "ready")
        assert _ready(svc.url).json() == {
            "status": "ok",
            "postgres": "ok",
            "redis": "ok",
            "oidc": "ok",
            "keys": "fresh",
            "revocations": "synced",
            "assertion_keys": "ok",
        }
        private_redis.stop()
        r = _ready(svc.url)  # the 2.5 s client timeout bounds the answer
        assert r.status_code == 200
        assert r.json()["status"] == "degraded"
        assert r.json()["redis"] == "down"
        assert r.json()["postgres"] == "ok"
        private_redis.start()
        wait_until(lambda: _ready(svc.url).json()["status"] == "ok", 15, "ok again")


def _requests_by_pid(log: str, rid_prefix: str) -> dict[int, set[int]]:
    seen: dict[int, set[int]] = {}
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("event") == "request" and str(event.get("request_id", "")).startswith(
            rid_prefix
        ):
            seen.setdefault(event["pid"], set()).add(event["status"])
    return seen


def test_revoked_sid_is_refused_by_every_worker_within_a_second(
    idp: FakeKeycloak, idp_env: dict[str, str]
) -> None:
    """With 2 workers, revoking a sid makes both refuse its (cached) tokens within 1 s."""
    token = idp.mint_access_token("bob")
    sid = idp.verify(token)["sid"]
    admin = idp.mint_access_token("admin")
    headers = {**ORIGINAL, "Authorization": f"Bearer {token}"}
    # Which worker answered is read from the access lines, allowed checks included.
    with ServiceProcess({**idp_env, "AUTH_ACCESS_LOG_CHECKS": "all"}, workers=2) as svc:
        wait_until(lambda: _ready(svc.url).status_code == 200, 15, "ready")

        def ask(n: int, prefix: str) -> list[int]:
            statuses = []
            for i in range(n):  # a new connection each time, so the kernel spreads them
                with httpx.Client() as c:
                    statuses.append(
                        c.get(
                            f"{svc.url}/authz/auth-request",
                            headers={**headers, "X-Request-ID": f"{prefix}{i}"},
                        ).status_code
                    )
            return statuses

        assert set(ask(40, "before-")) == {200}
        r = httpx.post(
            f"{svc.url}/admin/revocations",
            json={"sid": sid},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert r.status_code == 204
        revoked_at = time.monotonic()
        wait_until(lambda: set(ask(10, "probe-")) == {401}, 1.0, "revocation everywhere")
        assert time.monotonic() - revoked_at < 1.0
        assert set(ask(60, "after-")) == {401}
        wait_until(lambda: len(_requests_by_pid(svc.logs(), "after-")) == 2, 5, "log lines")
        by_pid = _requests_by_pid(svc.logs(), "after-")
        assert len(by_pid) == 2, by_pid  # both workers answered, and each refused
        assert all(statuses == {401} for statuses in by_pid.values())


def test_cached_tokens_cost_no_redis_commands(
    idp: FakeKeycloak, idp_env: dict[str, str], private_redis: RedisProcess
) -> None:
    """A load of repeated valid tokens sends (almost) no commands to Redis: no per-request I/O."""
    env = {**idp_env, "AUTH_REDIS_URL": private_redis.url}
    tokens = [idp.mint_access_token("alice") for _ in range(5)]
    client = redis.Redis.from_url(private_redis.url)

    def total_calls() -> int:
        stats = client.info("commandstats")
        return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")

    with ServiceProcess(env) as svc, httpx.Client(base_url=svc.url) as http:
        wait_until(lambda: _ready(svc.url).status_code == 200, 15, "ready")
        for t in tokens:  # warm the cache
            assert (
                http.get(
                    "/authz/auth-request", headers={**ORIGINAL, "Authorization": f"Bearer {t}"}
                ).status_code
                == 200
            )
        before = total_calls()
        n = 1000
        for i in range(n):
            t = tokens[i % len(tokens)]
            r = http.get(
                "/authz/auth-request", headers={**ORIGINAL, "Authorization": f"Bearer {t}"}
            )
            assert r.status_code == 200
        delta = total_calls() - before
    client.close()
    assert delta < 10, f"{delta} Redis commands for {n} cached requests"


def test_sigterm_lets_in_flight_requests_finish(
    keycloak: tuple[FakeKeycloak, StandInServer], idp_env: dict[str, str]
) -> None:
    """SIGTERM while a request waits on the IdP: it still gets its 200, then a clean exit."""
    idp, _ = keycloak
    token = idp.mint_access_token("alice", lightweight=True, client_id="auth-service")
    # The slow introspection (1.5 s) must stay within the introspection bound (default 1 s).
    svc = ServiceProcess({**idp_env, "AUTH_INTROSPECTION_TIMEOUT": "5"}).start()
    wait_until(lambda: _ready(svc.url).status_code == 200, 15, "ready")
    idp.set_fault("introspect", "slow", delay=1.5)
    before = idp.requests["introspect"]
    result: dict[str, int] = {}

    def call() -> None:
        r = httpx.get(
            f"{svc.url}/authz/auth-request",
            timeout=10,
            headers={**ORIGINAL, "Authorization": f"Bearer {token}"},
        )
        result["status"] = r.status_code

    thread = threading.Thread(target=call)
    thread.start()
    wait_until(lambda: idp.requests["introspect"] > before, 5, "the request to reach the IdP")
    code = svc.stop(signal.SIGTERM)
    thread.join(10)
    assert result.get("status") == 200
    # A server may re-raise the signal after a graceful shutdown: -SIGTERM is a clean exit too.
    assert code in (0, -signal.SIGTERM)
    assert '"event":"stopping"' in svc.logs()


def test_sighup_reloads_the_policy_in_every_worker_without_restarts(
    idp: FakeKeycloak, idp_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGHUP to `serve --workers 2`: both workers use the new policy; an invalid one is refused."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[[rules]]\nname = "all"\npaths = ["/**"]\n')
    env = {
        **idp_env,
        "AUTH_POLICY_FILE": str(policy),
        "AUTH_POLICY_WATCH_INTERVAL": "0",
        "AUTH_ACCESS_LOG_CHECKS": "all",  # the workers are told apart by their access lines
    }
    headers = {**ORIGINAL, "Authorization": f"Bearer {idp.mint_access_token('bob')}"}

    def statuses(prefix: str) -> set[int]:
        seen = set()
        for i in range(30):
            with httpx.Client() as c:
                seen.add(
                    c.get(
                        f"{svc.url}/authz/auth-request",
                        headers={**headers, "X-Request-ID": f"{prefix}{i}"},
                    ).status_code
                )
        return seen

    with ServiceProcess(env, workers=2) as svc:
        wait_until(lambda: _ready(svc.url).status_code == 200, 15, "ready")
        assert statuses("a-") == {200}
        pids = set(_requests_by_pid(svc.logs(), "a-"))
        policy.write_text(
            '[[rules]]\nname = "admins"\npaths = ["/**"]\nrequire_roles = ["auth-admin"]\n'
        )
        assert svc.proc is not None
        svc.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: statuses("b-") == {403}, 5, "both workers to deny")
        policy.write_text("this is not toml [")
        svc.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: svc.logs().count('"event":"policy_refused"') >= 2, 5, "refusals")
        assert statuses("c-") == {403}  # the previous valid policy stays in force
        assert set(_requests_by_pid(svc.logs(), "c-")) <= pids  # same workers, none restarted


def test_oversized_input_through_the_real_server(
    idp: FakeKeycloak, idp_env: dict[str, str]
) -> None:
    """A 17 KiB token is our 401; a header block the server will not buffer is its 431.

    Neither costs the worker anything: a valid token passes right after.
    """
    token = idp.mint_access_token("alice")
    with ServiceProcess(idp_env) as svc:
        wait_until(lambda: _ready(svc.url).status_code == 200, 15, "ready")
        url = f"{svc.url}/authz/auth-request"
        with httpx.Client(timeout=5) as c:
            r = c.get(url, headers={**ORIGINAL, "Authorization": "Bearer " + "a" * (17 * 1024)})
            assert r.status_code == 401
            assert r.json()["reason"] == "token_too_large"
            assert 'error="invalid_token"' in r.headers["www-authenticate"]
            assert r.headers["x-request-id"]
        with httpx.Client(timeout=5) as c:
            r = c.get(url, headers={**ORIGINAL, "X-Junk": "a" * (1024 * 1024)})
            assert r.status_code == 431
        with httpx.Client(timeout=5) as c:
            r = c.get(url, headers={**ORIGINAL, **{f"X-H{i}": "v" for i in range(150)}})
            assert r.status_code == 431
        ok = httpx.get(url, timeout=5, headers={**ORIGINAL, "Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.headers["x-auth-user"] == "alice"


def _workers(svc: ServiceProcess) -> set[int]:
    assert svc.proc is not None
    pid = svc.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(c) for c in children}


def test_a_killed_worker_is_replaced(idp: FakeKeycloak, idp_env: dict[str, str]) -> None:
    """kill -9 of a worker: the supervisor starts another, and checks pass again."""
    token = idp.mint_access_token("alice")
    headers = {**ORIGINAL, "Authorization": f"Bearer {token}"}
    with ServiceProcess(idp_env) as svc:
        wait_until(lambda: _ready(svc.url).status_code == 200, 15, "ready")
        (worker,) = _workers(svc)
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: bool(_workers(svc) - {worker}), 15, "a new worker")

        def ready() -> bool:
            try:
                return _ready(svc.url).status_code == 200
            except httpx.HTTPError:  # nobody listening between the two workers
                return False

        wait_until(ready, 20, "ready again")
        r = httpx.get(f"{svc.url}/authz/auth-request", headers=headers, timeout=5)
        assert r.status_code == 200 and r.headers["x-auth-user"] == "alice"
        assert svc.proc is not None and svc.proc.poll() is None


def test_a_worker_that_cannot_start_stops_the_server(
    idp_env: dict[str, str], tmp_path: Path
) -> None:
    """An unreadable policy fails the lifespan: one retry, then exit 1, no endless respawning."""
    policy = tmp_path / "policy.toml"
    policy.write_text("rules = [")
    svc = ServiceProcess({**idp_env, "AUTH_POLICY_FILE": str(policy)})
    with pytest.raises(AssertionError, match="exited early"):
        svc.start(timeout=30)
    assert svc.proc is not None and svc.proc.wait(5) == 1
    assert "Worker crash loop detected" in svc.logs()


def _policies(svc: ServiceProcess) -> dict[int, int]:
    """Scheduling policy of every thread of every worker, by thread id."""
    found: dict[int, int] = {}
    for worker in _workers(svc):
        for task in Path(f"/proc/{worker}/task").iterdir():
            found[int(task.name)] = os.sched_getscheduler(int(task.name))
    return found


@pytest.mark.parametrize(("setting", "policy"), [(None, os.SCHED_BATCH), ("false", os.SCHED_OTHER)])
def test_workers_run_under_the_configured_scheduling_policy(
    idp_env: dict[str, str], setting: str | None, policy: int
) -> None:
    """SCHED_BATCH by default for every thread of every worker (granian's too); off on request."""
    env = dict(idp_env)
    if setting is not None:
        env["AUTH_BATCH_SCHEDULING"] = setting
    with ServiceProcess(env, workers=2) as svc:
        wait_until(lambda: _ready(svc.url).status_code == 200, 15, "ready")
        policies = _policies(svc)
        assert len(_workers(svc)) == 2
        assert len(policies) > 2  # each worker runs granian's threads beside its own
        assert set(policies.values()) == {policy}
