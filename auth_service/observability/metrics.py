"""Prometheus metrics, one registry per app instance (so tests can build many apps).

Each capability records into the `Metrics` object the app factory creates;
``GET /metrics`` renders the registry in the Prometheus text format.

The per-request metrics (HTTP requests and latency, forward-auth decisions and
latency, token-cache lookups) are `LoopCounter` and `LoopHistogram`: they are only
ever updated on the worker's event loop thread, so an update is a plain attribute
increment, where ``prometheus_client``'s own metrics take a lock per update (seven
of them per forward-auth check). A collector turns them into ordinary metric
families when ``/metrics`` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from auth_service.observability import gc_pauses
from auth_service.observability.worker_metrics import WorkerMetrics

__all__ = ("CONTENT_TYPE", "LoopCounter", "LoopHistogram", "Metrics")

CONTENT_TYPE = "text/plain; version=0.0.4"
"""The exposition format's media type; Litestar adds ``; charset=utf-8`` to text types."""
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class _Observations:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last slot is above every bound (+Inf)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # first bound >= value: "le"
        self.total += value


C = TypeVar("C", _Count, _Observations)


class _Labelled(Generic[C]):
    """Label combinations → their cell, created on first use; a dict lookup per update."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.children: dict[tuple[str, ...], C] = {}

    def _new(self) -> C:
        raise NotImplementedError

    def labels(self, *values: str) -> C:
        """The cell of one label combination (created empty when new)."""
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}")
            child = self.children[values] = self._new()
        return child

    def family(self) -> Metric:
        raise NotImplementedError


class LoopCounter(_Labelled[_Count]):
    """A labelled counter updated from one thread (the event loop) without locking."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        super().__init__(name.removesuffix("_total"), documentation, labelnames)

    def _new(self) -> _Count:
        return _Count()

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self.children.items()):
            family.add_metric(values, child.value)
        return family


class LoopHistogram(_Labelled[_Observations]):
    """A labelled histogram updated from one thread (the event loop) without locking."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> None:
        super().__init__(name, documentation, labelnames)
        self.bounds = tuple(sorted(buckets))

    def _new(self) -> _Observations:
        return _Observations(self.bounds)

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self.children.items()):
            counts, running, buckets = list(child.counts), 0, []
            for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
            family.add_metric(values, buckets, child.total)
        return family


class _LoopCollector(Collector):
    def __init__(self, metrics: Sequence[_Labelled[Any]]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for metric in self.metrics:
            yield metric.family()


class Metrics:
    """Every metric the service exports.

    With ``shared_dir`` (what ``auth-service serve`` gives each worker), ``render``
    answers for every worker of the server (`auth_service.observability.worker_metrics`);
    without it, for this process alone.
    """

    def __init__(self, shared_dir: str | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # The standard process_*, python_gc_* and python_info metrics of this process.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(collector)
        gc_pauses.install()
        r.register(gc_pauses.GcPauseCollector())
        self.http_requests = LoopCounter(
            "auth_http_requests_total",
            "HTTP requests by route template, method and status.",
            ("route", "method", "status"),
        )
        self.http_latency = LoopHistogram(
            "auth_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ("route",),
            _LATENCY_BUCKETS,
        )
        self.decisions = LoopCounter(
            "auth_decisions_total",
            "Forward-auth decisions by endpoint, outcome and reason.",
            ("endpoint", "outcome", "reason"),
        )
        self.decision_latency = LoopHistogram(
            "auth_decision_duration_seconds",
            "Forward-auth decision latency.",
            ("endpoint",),
            _LATENCY_BUCKETS,
        )
        self.token_cache = LoopCounter(
            "auth_token_cache_total", "Verified-token cache lookups.", ("result",)
        )
        r.register(
            _LoopCollector(
                (
                    self.http_requests,
                    self.http_latency,
                    self.decisions,
                    self.decision_latency,
                    self.token_cache,
                )
            )
        )
        self.jwks_fetches = Counter(
            "auth_jwks_fetches_total", "JWKS fetches by outcome.", ("outcome",), registry=r
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
        # Dependency state for alerts (deploy/observability): 0 or 1 per worker, so
        # the whole-server scrape (gauges summed over live workers) counts the
        # workers in that state. Read from the state itself when scraped (see
        # `watch_dependencies`): nothing on the request path, nothing to drift.
        self.idp_unreachable = Gauge(
            "auth_idp_unreachable_workers",
            "Workers whose last reachability check of the IdP (its discovery document, "
            "every 10 s) failed, or that have not checked yet.",
            registry=r,
        )
        self.revocations_unsynced = Gauge(
            "auth_revocations_unsynced_workers",
            "Workers whose revocation mirror is not subscribed and reloaded from Redis.",
            registry=r,
        )

        self.workers: WorkerMetrics | None = None
        if shared_dir is not None:
            self.workers = WorkerMetrics(r, shared_dir)
            self.workers.start()

    def watch_dependencies(
        self, *, idp_reachable: Callable[[], bool], revocations_synced: Callable[[], bool]
    ) -> None:
        """Base the dependency gauges on these state readers.

        They are called whenever the registry is collected: at a scrape, and from
        the snapshot publisher's thread (`auth_service.observability.worker_metrics`),
        so they must only read a flag (no I/O, no awaiting, nothing that mutates).
        """
        self.idp_unreachable.set_function(lambda: 0.0 if idp_reachable() else 1.0)
        self.revocations_unsynced.set_function(lambda: 0.0 if revocations_synced() else 1.0)

    def render(self) -> bytes:
        """Prometheus text format: every worker's metrics merged, or this process's."""
        if self.workers is None:
            return generate_latest(self.registry)
        return generate_latest(self.workers.merged())
