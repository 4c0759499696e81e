"""``/metrics`` after forward-auth checks: decisions, latency, token cache, HTTP requests."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.fakes.keycloak import FakeKeycloak
from tests.integration.forward_auth.conftest import auth_request


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        m = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if m is None or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if found == labels:
            return float(m.group(3))
    return 0.0


async def test_decisions_latency_and_token_cache_are_counted(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """Two allows (one miss, one hit), one invalid token and one unauthenticated check."""
    before = (await service.get("/metrics")).text
    token = idp.mint_access_token("alice")
    assert (await auth_request(service, token=token)).status_code == 200
    assert (await auth_request(service, token=token)).status_code == 200
    assert (await auth_request(service, token="a.b.c")).status_code == 401
    assert (await auth_request(service)).status_code == 401
    after = (await service.get("/metrics")).text

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    endpoint = "/authz/auth-request"
    assert delta("auth_decisions_total", endpoint=endpoint, outcome="allow", reason="") == 2
    invalid = {"outcome": "invalid_token", "reason": "malformed"}
    assert delta("auth_decisions_total", endpoint=endpoint, **invalid) == 1
    assert (
        delta(
            "auth_decisions_total",
            endpoint=endpoint,
            outcome="unauthenticated",
            reason="authentication_required",
        )
        == 1
    )
    assert delta("auth_decision_duration_seconds_count", endpoint=endpoint) == 4
    assert delta("auth_decision_duration_seconds_bucket", endpoint=endpoint, le="+Inf") == 4
    assert delta("auth_decision_duration_seconds_sum", endpoint=endpoint) > 0
    assert delta("auth_token_cache_total", result="hit") == 1
    assert delta("auth_token_cache_total", result="miss") == 2  # alice's first, then a.b.c
    route = "/authz/auth-request"
    assert delta("auth_http_requests_total", route=route, method="GET", status="200") == 2
    assert delta("auth_http_requests_total", route=route, method="GET", status="401") == 2
    assert delta("auth_http_request_duration_seconds_count", route=route) == 4
    assert "# TYPE auth_decision_duration_seconds histogram" in after
    assert "# TYPE auth_decisions_total counter" in after


async def test_buckets_are_cumulative(service: AsyncTestClient[Litestar]) -> None:
    """Each ``le`` bucket holds at least as many observations as the one below it."""
    await auth_request(service)
    text = (await service.get("/metrics")).text
    bucket = r'auth_decision_duration_seconds_bucket\{endpoint="/authz/auth-request",le="([^"]+)"\}'
    bounds = re.findall(bucket + r" (\S+)", text)
    assert len(bounds) == 13 and bounds[-1][0] == "+Inf"
    counts = [float(v) for _, v in bounds]
    assert counts == sorted(counts) and counts[-1] >= 1
