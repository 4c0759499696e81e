"""`auth_service.server`: the scheduling switch degrades to a log line where it is refused."""

from __future__ import annotations

import os

import pytest
from structlog.testing import capture_logs

from auth_service import server


def test_refused_switch_is_logged_and_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(pid: int, policy: int, param: os.sched_param) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    with capture_logs() as logs:
        assert server.use_batch_scheduling() is False
    assert logs == [
        {
            "event": "batch_scheduling_unavailable",
            "reason": "Operation not permitted",
            "log_level": "warning",
        }
    ]


def test_platform_without_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "SCHED_BATCH")
    with capture_logs() as logs:
        assert server.use_batch_scheduling() is False
    assert [e["event"] for e in logs] == ["batch_scheduling_unavailable"]
