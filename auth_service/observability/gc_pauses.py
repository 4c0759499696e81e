"""Garbage-collector pauses of this process, as metrics.

A full collection stops every request of the worker, so its length bounds the
latency tail under a load that allocates (a new token per request fills the token
cache with objects the collector must walk). One `gc.callbacks` hook per process,
installed once, times each collection; `GcPauseCollector` exports the pauses as
``auth_gc_pause_seconds{generation}`` (histogram) and the longest one since start as
``auth_gc_pause_max_seconds{generation}``. `make bench` reads the histogram around
its new-token runs.
"""

from __future__ import annotations

import gc
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ("BUCKETS", "GcPauseCollector", "install")

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
"""Upper bounds in seconds (plus +Inf)."""

_GENERATIONS = 3
_counts = [[0] * (len(BUCKETS) + 1) for _ in range(_GENERATIONS)]
_sums = [0.0] * _GENERATIONS
_max = [0.0] * _GENERATIONS
_started = 0.0
_installed = False


def _hook(phase: str, info: dict[str, Any]) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter()
        return
    pause = time.perf_counter() - _started
    gen = min(int(info.get("generation", 0)), _GENERATIONS - 1)
    _counts[gen][bisect_left(BUCKETS, pause)] += 1
    _sums[gen] += pause
    if pause > _max[gen]:
        _max[gen] = pause


def install() -> None:
    """Start timing collections in this process (idempotent)."""
    global _installed
    if not _installed:
        gc.callbacks.append(_hook)
        _installed = True


class GcPauseCollector(Collector):
    """Exports the pauses timed by `install`'s hook."""

    def collect(self) -> Iterator[Metric]:
        hist = HistogramMetricFamily(
            "auth_gc_pause_seconds", "Garbage collector pauses.", labels=("generation",)
        )
        peak = GaugeMetricFamily(
            "auth_gc_pause_max_seconds",
            "Longest garbage collector pause since the process started.",
            labels=("generation",),
        )
        for gen in range(_GENERATIONS):
            running = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip((*BUCKETS, float("inf")), _counts[gen], strict=True):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
            hist.add_metric([str(gen)], buckets, _sums[gen])
            peak.add_metric([str(gen)], _max[gen])
        yield hist
        yield peak
