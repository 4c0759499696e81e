"""Merging the workers' metric snapshots (`auth_service.observability.worker_metrics`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from auth_service.observability.metrics import Metrics
from auth_service.observability.worker_metrics import WorkerMetrics


def _value(text: str, line_prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_prefix} not in:\n{text}")


def _foreign_snapshot(directory: Path, counter: float, gauge: float, *, alive: bool) -> int:
    """Publish a snapshot from another process; return that process's pid."""
    code = (
        "import sys\n"
        "from prometheus_client import CollectorRegistry, Counter, Gauge\n"
        "from auth_service.observability.worker_metrics import WorkerMetrics\n"
        "r = CollectorRegistry()\n"
        "Counter('jobs', 'j', ('kind',), registry=r).labels('a').inc(float(sys.argv[2]))\n"
        "Gauge('depth', 'd', registry=r).set(float(sys.argv[3]))\n"
        "WorkerMetrics(r, sys.argv[1]).publish()\n"
        "print(flush=True)\n"
        "sys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(directory), str(counter), str(gauge)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdout.readline()  # published
    if not alive:
        proc.stdin.close()
        proc.wait(10)
    _KEEP.append(proc)
    return proc.pid


_KEEP: list[subprocess.Popen[bytes]] = []


def teardown_module() -> None:
    for proc in _KEEP:
        proc.kill()
        proc.wait(10)


def test_counters_add_up_over_live_and_dead_workers_gauges_over_live_ones(
    tmp_path: Path,
) -> None:
    r = CollectorRegistry()
    Counter("jobs", "j", ("kind",), registry=r).labels("a").inc(1)
    Gauge("depth", "d", registry=r).set(5)
    own = WorkerMetrics(r, tmp_path)
    _foreign_snapshot(tmp_path, 10, 7, alive=True)
    _foreign_snapshot(tmp_path, 100, 1000, alive=False)
    text = generate_latest(own.merged()).decode()
    assert _value(text, 'jobs_total{kind="a"}') == 111  # the dead worker's counts stay
    assert _value(text, "depth") == 12  # its gauge does not
    assert _value(text, "auth_metrics_workers") == 2


def test_a_torn_or_foreign_file_is_skipped_not_fatal(tmp_path: Path) -> None:
    r = CollectorRegistry()
    Counter("jobs", "j", registry=r).inc(3)
    own = WorkerMetrics(r, tmp_path)
    (tmp_path / "worker-1.json").write_bytes(b'{"pid": 1, "fam')
    text = generate_latest(own.merged()).decode()
    assert _value(text, "jobs_total") == 3


def test_without_a_shared_directory_metrics_are_this_process_and_include_process_metrics() -> None:
    text = Metrics().render().decode()
    assert _value(text, "process_resident_memory_bytes") > 0
    assert "auth_metrics_workers" not in text
