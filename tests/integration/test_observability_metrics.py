"""Every metric the alert rules and the Grafana dashboard query is exported by ``/metrics``.

A real ``auth-service serve`` (the same `create_app` as production) with two
workers gets some traffic (an allowed and a denied forward-auth check, an
unknown route), then one scrape of ``/metrics`` must declare every metric
family that deploy/observability names, and carry samples for the
per-request ones.
"""

from __future__ import annotations

import re

import httpx

from tests.fakes.keycloak import FakeKeycloak
from tests.support.processes import ServiceProcess, free_port, wait_until
from tests.unit.test_observability_kit import family_name, metric_names

ORIGINAL = {"X-Original-URL": "https://app.test/orders/1", "X-Original-Method": "GET"}
_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$", re.M)
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", re.M)


def _scrape(url: str) -> str:
    with httpx.Client() as client:
        response = client.get(f"{url}/metrics")
    assert response.status_code == 200
    return response.text


def _value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else -1.0


def test_every_metric_of_the_rules_and_dashboard_is_exported(
    idp: FakeKeycloak, idp_env: dict[str, str]
) -> None:
    token = idp.mint_access_token("bob")
    with ServiceProcess(idp_env, workers=2) as svc:
        wait_until(lambda: _value(_scrape(svc.url), "auth_metrics_workers") == 2, 15, "2 workers")
        with httpx.Client(base_url=svc.url) as client:
            allowed = client.get(
                "/authz/auth-request", headers={**ORIGINAL, "Authorization": f"Bearer {token}"}
            )
            denied = client.get("/authz/auth-request", headers=ORIGINAL)
            missing = client.get("/no-such-route")
        assert (allowed.status_code, denied.status_code, missing.status_code) == (200, 401, 404)

        def decisions_counted() -> bool:
            return "auth_decision_duration_seconds_bucket{" in _scrape(svc.url)

        wait_until(decisions_counted, 10, "the decisions in a scrape")

        def dependencies_fine() -> bool:
            text = _scrape(svc.url)
            return (
                _value(text, "auth_idp_unreachable_workers") == 0
                and _value(text, "auth_revocations_unsynced_workers") == 0
            )

        # Both workers discovered the realm and synchronised their revocations.
        wait_until(dependencies_fine, 15, "dependency gauges at 0 for both workers")
        text = _scrape(svc.url)

    declared = set(_TYPE.findall(text))
    families = {name for name, _ in declared}
    samples = set(_SAMPLE.findall(text))
    wanted = metric_names()
    assert len(wanted) >= 15
    for name in sorted(wanted):
        assert name in samples or family_name(name) in families or name in families, (
            f"{name} is queried by deploy/observability but /metrics does not export it"
        )
    # The per-request metrics and the dependency gauges carry samples after traffic.
    for name in (
        "auth_decision_duration_seconds_bucket",
        "auth_decisions_total",
        "auth_http_requests_total",
        "auth_http_request_duration_seconds_bucket",
        "auth_jwks_fetches_total",
        "auth_idp_unreachable_workers",
        "auth_revocations_unsynced_workers",
        "auth_audit_spool_bytes",
        "process_cpu_seconds_total",
    ):
        assert name in samples, name


def test_the_idp_gauge_counts_workers_that_cannot_reach_the_realm(
    idp_env: dict[str, str],
) -> None:
    """With the realm unreachable both workers say so; Redis is there, so revocations sync."""
    env = {**idp_env, "AUTH_OIDC_ISSUER": f"http://127.0.0.1:{free_port()}/realms/acme"}
    with ServiceProcess(env, workers=2) as svc:

        def counted() -> bool:
            text = _scrape(svc.url)
            return (
                _value(text, "auth_metrics_workers") == 2
                and _value(text, "auth_idp_unreachable_workers") == 2
                and _value(text, "auth_revocations_unsynced_workers") == 0
            )

        wait_until(counted, 15, "2 workers without the IdP, both synchronised")
