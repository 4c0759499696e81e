"""Prometheus metrics, one registry per app instance (so tests can build many apps).

Each capability records into the `Metrics` object the app factory creates;
``GET /metrics`` renders the registry in the Prometheus text format.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ("CONTENT_TYPE", "Metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Every metric the service exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.http_requests = Counter(
            "auth_http_requests_total",
            "HTTP requests by route template, method and status.",
            ("route", "method", "status"),
            registry=r,
        )
        self.http_latency = Histogram(
            "auth_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ("route",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "auth_decisions_total",
            "Forward-auth decisions by endpoint, outcome and reason.",
            ("endpoint", "outcome", "reason"),
            registry=r,
        )
        self.decision_latency = Histogram(
            "auth_decision_duration_seconds",
            "Forward-auth decision latency.",
            ("endpoint",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.jwks_fetches = Counter(
            "auth_jwks_fetches_total", "JWKS fetches by outcome.", ("outcome",), registry=r
        )
        self.token_cache = Counter(
            "auth_token_cache_total", "Verified-token cache lookups.", ("result",), registry=r
        )
        self.revocations = Counter(
            "auth_revocations_total", "Revocations applied, by kind.", ("kind",), registry=r
        )
        self.introspections = Counter(
            "auth_idp_introspections_total",
            "Calls to the IdP introspection endpoint (lightweight tokens), by outcome.",
            ("outcome",),
            registry=r,
        )
        self.policy_reloads = Counter(
            "auth_policy_reloads_total", "Policy reloads by outcome.", ("outcome",), registry=r
        )
        self.audit_queue_depth = Gauge(
            "auth_audit_queue_depth", "Audit events waiting in memory.", registry=r
        )
        self.audit_spool_bytes = Gauge(
            "auth_audit_spool_bytes", "Size of the local audit spool.", registry=r
        )
        self.mfa_failures = Counter(
            "auth_mfa_failures_total", "Rejected TOTP or recovery codes.", registry=r
        )
        self.mfa_lockouts = Counter("auth_mfa_lockouts_total", "MFA lockouts.", registry=r)

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: ``labels()`` costs microseconds per call."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
