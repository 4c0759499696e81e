"""GC pauses timed by the process-wide hook and exported in Prometheus form."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry, generate_latest

from auth_service.observability import gc_pauses


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in registry.collect():
        for s in metric.samples:
            key = s.name + "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}"
            out[key] = s.value
    return out


def test_a_full_collection_is_counted_and_timed() -> None:
    """gc.collect() adds one generation-2 pause; the max and the +Inf bucket follow it."""
    gc_pauses.install()
    gc_pauses.install()  # idempotent: one hook
    assert gc.callbacks.count(gc_pauses._hook) == 1
    registry = CollectorRegistry()
    registry.register(gc_pauses.GcPauseCollector())
    before = _samples(registry)
    gc.collect()
    after = _samples(registry)
    count = "auth_gc_pause_seconds_count{generation=2}"
    assert after[count] == before[count] + 1
    assert (
        after["auth_gc_pause_seconds_sum{generation=2}"]
        > before["auth_gc_pause_seconds_sum{generation=2}"]
    )
    assert after["auth_gc_pause_max_seconds{generation=2}"] > 0
    assert b'auth_gc_pause_seconds_bucket{generation="2",le="+Inf"}' in generate_latest(registry)


def test_whole_server_longest_pause_is_the_largest_of_the_workers() -> None:
    """Merged over workers, the longest-pause gauge is a maximum, not a sum."""
    from auth_service.observability.worker_metrics import _Family, _merge_into, _Sample

    into: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for value in (0.004, 0.009, 0.002):
        family = _Family(
            "auth_gc_pause_max_seconds",
            "gauge",
            "d",
            [_Sample("auth_gc_pause_max_seconds", {"generation": "2"}, value)],
        )
        _merge_into(into, family, family.samples)
    assert into[("auth_gc_pause_max_seconds", (("generation", "2"),))] == 0.009
