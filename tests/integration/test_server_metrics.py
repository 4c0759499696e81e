"""``/metrics`` answers for the whole server: every worker's counts, and process metrics."""

from __future__ import annotations

import re

import httpx

from tests.fakes.keycloak import FakeKeycloak
from tests.support.processes import ServiceProcess, wait_until

ORIGINAL = {"X-Original-URL": "https://app.test/orders/1", "X-Original-Method": "GET"}


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample line of the Prometheus text format (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}(\{{(?P<labels>[^}}]*)\}})? (?P<value>\S+)$", re.M)
    total = 0.0
    for m in pattern.finditer(text):
        got = ",".join(sorted((m.group("labels") or "").split(","))) if m.group("labels") else ""
        if got == want:
            total += float(m.group("value"))
    return total


def _metrics(url: str) -> str:
    with httpx.Client() as c:  # a new connection: any worker may answer
        r = c.get(f"{url}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].count("charset") <= 1
    return r.text


def test_one_scrape_counts_the_decisions_of_both_workers(
    idp: FakeKeycloak, idp_env: dict[str, str]
) -> None:
    token = idp.mint_access_token("bob")
    headers = {**ORIGINAL, "Authorization": f"Bearer {token}"}
    # Which worker answered is read from the access lines, allowed checks included.
    env = {**idp_env, "AUTH_ACCESS_LOG_CHECKS": "all"}
    with ServiceProcess(env, workers=2) as svc:
        wait_until(lambda: _sample(_metrics(svc.url), "auth_metrics_workers") == 2, 15, "2 workers")
        decided = 0
        pids: set[str] = set()
        for i in range(60):  # a new connection each time, so the kernel spreads them
            with httpx.Client() as c:
                r = c.get(
                    f"{svc.url}/authz/auth-request",
                    headers={**headers, "X-Request-ID": f"sum-{i}"},
                )
            assert r.status_code == 200
            decided += 1
        for line in svc.logs().splitlines():
            if '"request_id":"sum-' in line.replace(" ", ""):
                m = re.search(r'"pid":\s*(\d+)', line)
                if m:
                    pids.add(m.group(1))
        assert len(pids) == 2, "both workers must have answered for this test to mean anything"

        def counted() -> float:
            return _sample(
                _metrics(svc.url),
                "auth_decisions_total",
                endpoint="/authz/auth-request",
                outcome="allow",
                reason="",
            )

        # Each worker publishes within a second; whichever worker answers the scrape
        # must then report both workers' decisions.
        wait_until(lambda: counted() == decided, 10, f"{decided} decisions in one scrape")
        for _ in range(6):  # and every later scrape, whichever worker answers it, agrees
            assert counted() == decided
        text = _metrics(svc.url)
        assert _sample(text, "process_resident_memory_bytes") > 0
        assert _sample(text, "process_cpu_seconds_total") > 0
        assert _sample(text, "auth_metrics_workers") == 2
