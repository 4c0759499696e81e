"""The dependency gauges follow the state they are given, read at each scrape."""

from __future__ import annotations

import re

from auth_service.observability.metrics import Metrics


def _value(metrics: Metrics, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", metrics.render().decode(), re.M)
    assert match is not None, name
    return float(match.group(1))


def test_gauges_follow_the_state() -> None:
    metrics = Metrics()
    state = {"idp": False, "revocations": False}
    metrics.watch_dependencies(
        idp_reachable=lambda: state["idp"], revocations_synced=lambda: state["revocations"]
    )
    assert _value(metrics, "auth_idp_unreachable_workers") == 1
    assert _value(metrics, "auth_revocations_unsynced_workers") == 1
    state["idp"] = True
    assert _value(metrics, "auth_idp_unreachable_workers") == 0
    assert _value(metrics, "auth_revocations_unsynced_workers") == 1
    state["revocations"] = True
    assert _value(metrics, "auth_revocations_unsynced_workers") == 0
    state["idp"] = False
    assert _value(metrics, "auth_idp_unreachable_workers") == 1
