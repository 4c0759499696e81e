"""Whole-server ``/metrics``: every worker publishes its samples; a scrape merges them.

``auth-service serve`` runs several worker processes behind one port, and a
scrape reaches one of them. Each worker therefore writes a snapshot of its own
registry to a shared directory (``AUTH_METRICS_DIR``; ``serve`` makes a private
one) at most every `PUBLISH_INTERVAL` seconds, from a daemon thread, never from
the request path. The worker answering ``/metrics`` publishes its own snapshot
first, then merges every worker's:

* counters and histograms (and their ``_sum``/``_count``/``_bucket`` samples) are
  summed over every worker that ever published, dead ones included, so a
  replaced worker's counts do not vanish and counters never go backwards;
  ``_created`` samples take the earliest time;
* gauges are summed over live workers only (a dead worker's queue depth is not
  there any more), except ``process_start_time_seconds`` and
  ``process_max_fds``, which take the smallest value.

``auth_metrics_workers`` says how many live workers the scrape covers.

A snapshot is JSON written to a temporary file and renamed into place, so a
reader never sees half of one. Between publications a scrape may lag another
worker by up to `PUBLISH_INTERVAL`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

__all__ = ("PUBLISH_INTERVAL", "WorkerMetrics")

PUBLISH_INTERVAL = 1.0
_PREFIX = "worker-"
_MIN_GAUGES = frozenset({"process_start_time_seconds", "process_max_fds", "python_info"})
_MAX_GAUGES = frozenset({"auth_gc_pause_max_seconds"})
"""Gauges that are a maximum per worker: the whole server's is the largest."""


class _Sample(msgspec.Struct, array_like=True):
    name: str
    labels: dict[str, str]
    value: float


class _Family(msgspec.Struct, array_like=True):
    name: str
    type: str
    documentation: str
    samples: list[_Sample]


class _Snapshot(msgspec.Struct):
    pid: int
    families: list[_Family]


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Snapshot).decode


def _families(registry: CollectorRegistry) -> list[_Family]:
    return [
        _Family(
            m.name,
            m.type,
            m.documentation,
            [_Sample(s.name, dict(s.labels), float(s.value)) for s in m.samples],
        )
        for m in registry.collect()
    ]


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class WorkerMetrics:
    """Publishes one worker's registry into ``directory`` and merges all workers'."""

    def __init__(self, registry: CollectorRegistry, directory: str | Path) -> None:
        self.registry = registry
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"{_PREFIX}{os.getpid()}.json"
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Publish every `PUBLISH_INTERVAL` seconds from a daemon thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="metrics-publisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Publish once more and stop the thread."""
        self._stopped.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(5)
        self.publish()

    def _run(self) -> None:
        while not self._stopped.wait(PUBLISH_INTERVAL):
            with contextlib.suppress(OSError):
                self.publish()

    def publish(self) -> None:
        """Write this worker's current samples (atomically replacing the last ones)."""
        data = _encode(_Snapshot(os.getpid(), _families(self.registry)))
        with self._lock:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(self.path)

    def snapshots(self) -> list[tuple[bool, _Snapshot]]:
        """Every worker's last snapshot, with whether that worker is alive."""
        found: list[tuple[bool, _Snapshot]] = []
        for path in sorted(self.directory.glob(f"{_PREFIX}*.json")):
            try:
                snap = _decode(path.read_bytes())
            except (OSError, msgspec.DecodeError):
                continue  # vanished or foreign: skip it rather than fail the scrape
            found.append((_alive(snap.pid), snap))
        return found

    def merged(self) -> CollectorRegistry:
        """A registry whose collector yields the merged families of every worker."""
        self.publish()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Merged(self.snapshots()))
        return registry


class _Merged(Collector):
    def __init__(self, snapshots: list[tuple[bool, _Snapshot]]) -> None:
        self.snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        order: list[str] = []
        families: dict[str, Metric] = {}
        values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for alive, snap in self.snapshots:
            for fam in snap.families:
                if fam.type == "gauge" and not alive:
                    continue
                if fam.name not in families:
                    order.append(fam.name)
                    families[fam.name] = Metric(fam.name, fam.documentation, fam.type)
                    values[fam.name] = {}
                _merge_into(values[fam.name], fam, fam.samples)
        for name in order:
            metric = families[name]
            for (sample, labels), value in values[name].items():
                metric.add_sample(sample, dict(labels), value)
            yield metric
        workers = Metric("auth_metrics_workers", "Live workers covered by this scrape.", "gauge")
        workers.add_sample("auth_metrics_workers", {}, float(sum(a for a, _ in self.snapshots)))
        yield workers


def _merge_into(
    into: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    family: _Family,
    samples: Iterable[_Sample],
) -> None:
    take_min = family.type == "gauge" and family.name in _MIN_GAUGES
    take_max = family.type == "gauge" and family.name in _MAX_GAUGES
    for s in samples:
        key = (s.name, tuple(sorted(s.labels.items())))
        old = into.get(key)
        if old is None:
            into[key] = s.value
        elif take_min or s.name.endswith("_created"):
            into[key] = min(old, s.value)
        elif take_max:
            into[key] = max(old, s.value)
        else:
            into[key] = old + s.value
