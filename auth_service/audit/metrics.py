"""Prometheus metrics of the audit writer.

Queue depth and spool size are the gauges the shared `Metrics` already
declares (``auth_audit_queue_depth``, ``auth_audit_spool_bytes``); the rest
are registered here, in the same registry, so ``GET /metrics`` shows them all.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from auth_service.observability.metrics import Metrics

__all__ = ("AuditMetrics",)

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class AuditMetrics:
    """Queue depth, spool size, write latency, batches, failures, drops and replays."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        if metrics is None:
            r = CollectorRegistry()
            self.queue_depth = Gauge(
                "auth_audit_queue_depth", "Audit events waiting in memory.", registry=r
            )
            self.spool_bytes = Gauge(
                "auth_audit_spool_bytes", "Size of the local audit spool.", registry=r
            )
        else:
            r = metrics.registry
            self.queue_depth = metrics.audit_queue_depth
            self.spool_bytes = metrics.audit_spool_bytes
        self.registry = r
        self.write_seconds = Histogram(
            "auth_audit_write_duration_seconds",
            "Duration of one audit batch insert.",
            buckets=_BUCKETS,
            registry=r,
        )
        self.batches = Counter("auth_audit_batches_total", "Audit batches written.", registry=r)
        self.written = Counter(
            "auth_audit_events_written_total", "Audit events sent to PostgreSQL.", registry=r
        )
        self.failures = Counter(
            "auth_audit_write_failures_total",
            "Failed audit batch writes (retried from memory or the spool).",
            registry=r,
        )
        self.dropped = Counter(
            "auth_audit_events_dropped_total",
            "Audit events lost because both the spool and the queue were full.",
            registry=r,
        )
        self.unspooled = Counter(
            "auth_audit_events_unspooled_total",
            "Audit events kept in memory only because the spool was full or failing.",
            registry=r,
        )
        self.replayed = Counter(
            "auth_audit_events_replayed_total",
            "Audit events replayed from spools of dead writers.",
            registry=r,
        )
        self.aggregated = Counter(
            "auth_audit_events_aggregated_total",
            "Denials counted into an aggregation window instead of written one by one.",
            registry=r,
        )
