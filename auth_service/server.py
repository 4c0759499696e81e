"""``auth-service serve``: granian (a Rust HTTP/1.1 server) running the ASGI app.

Why granian: on one pinned core, with wrk on the other, a bare ASGI app answers
about 17,600 req/s under granian against 13,900 under uvicorn with uvloop and
httptools, and `make bench`'s repeated-token load went from about 8,000 to about
11,000 req/s. The server's per-request cost is most of what a cached
forward-auth check costs, so the transport decides the figure.

Process model: a supervisor process binds the socket and starts ``workers``
worker processes; each builds the app from the environment
(``auth_service.asgi:app_from_env``) and runs its lifespan. granian's own
configuration: one single-threaded Rust runtime per worker, uvloop, asyncio
tasks (its Rust task implementation is marked experimental), HTTP/1.1 only (the
gateways in front speak it), no WebSockets.

Signals, to the supervisor:

* SIGTERM / SIGINT: each worker stops accepting, finishes in-flight requests and
  runs the lifespan shutdown (audit queue flushed); workers still busy after
  ``KILL_TIMEOUT`` seconds are killed.
* SIGHUP: forwarded to every worker, which reloads the policy in place
  (`auth_service.policy`), refusing an invalid file and keeping the policy it
  has. granian's own SIGHUP handling would replace the workers instead, and a
  worker started against an invalid policy file would not come up.

A worker that dies (killed, crashed) is replaced by a new one; one that dies
again within a few seconds of being replaced means it cannot start, and the
supervisor exits non-zero rather than looping.

granian's log records go through the root logger, so they come out as JSON like
everything else (`auth_service.observability.logging`).

Scheduling: with ``batch_scheduling`` (``AUTH_BATCH_SCHEDULING``, on by default)
the supervisor switches itself to Linux ``SCHED_BATCH`` before it forks, so every
worker and every thread in it runs under that policy. Under the default policy
granian's I/O thread, woken by each new request, preempted the Python thread
mid-request (1.4 times per request with a new token on each), evicting what the
signature checks had in cache. ``SCHED_BATCH`` threads do not preempt on wake-up
(sched(7): "without interactivity causing extra preemptions (between the
workload's tasks)"): 0.05 switches per request, and 16 to 34% more new-token
requests per second in interleaved rounds against the default policy (the README
has the figures). No privilege is needed; where the change is refused or the
platform lacks the policy, the server logs it and runs as it is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog
from granian.constants import HTTPModes, Interfaces, Loops, RuntimeModes, TaskImpl
from granian.log import LogLevels
from granian.server.mp import MPServer

__all__ = ("KILL_TIMEOUT", "run")

log = structlog.get_logger("auth_service.server")

APP = "auth_service.asgi:app_from_env"
KILL_TIMEOUT = 30
"""Seconds a worker may take to finish in-flight requests after SIGTERM."""

_LOGGING = {
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": True, "level": "WARNING"},
    }
}
"""granian's loggers without its own handlers: records propagate to our root handler."""


class _Supervisor(MPServer):
    """granian's process supervisor, forwarding SIGHUP to the workers."""

    def signal_handler_reload(self, *args: Any, **kwargs: Any) -> None:
        for worker in list(self.wrks):
            pid = worker.inner.pid
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGHUP)


def use_batch_scheduling() -> bool:
    """Switch the calling thread to ``SCHED_BATCH``; threads and processes it starts inherit it.

    Returns whether the policy is now in force (``False`` where the platform lacks
    it or refuses the change).
    """
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:
        log.warning("batch_scheduling_unavailable", reason="not supported here")
        return False
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except OSError as exc:
        log.warning("batch_scheduling_unavailable", reason=exc.strerror)
        return False
    return True


@contextlib.contextmanager
def worker_metrics_dir(configured: str | None) -> Iterator[str]:
    """The directory the workers publish their metrics in, passed to them as ``AUTH_METRICS_DIR``.

    A configured directory is emptied of earlier runs' snapshots; otherwise a private
    one is made and removed when the server stops.
    """
    if configured is not None:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("worker-*"):
            old.unlink(missing_ok=True)
        yield str(path)
        return
    made = tempfile.mkdtemp(prefix="auth-service-metrics-")
    os.environ["AUTH_METRICS_DIR"] = made
    try:
        yield made
    finally:
        os.environ.pop("AUTH_METRICS_DIR", None)
        shutil.rmtree(made, ignore_errors=True)


def run(
    host: str,
    port: int,
    workers: int,
    log_level: str,
    *,
    batch_scheduling: bool = True,
    metrics_dir: str | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; exits non-zero when a worker cannot start."""
    if batch_scheduling:
        use_batch_scheduling()
    with worker_metrics_dir(metrics_dir):
        _serve(host, port, workers, log_level)


def _serve(host: str, port: int, workers: int, log_level: str) -> None:
    level = log_level.lower()
    server = _Supervisor(
        APP,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        runtime_mode=RuntimeModes.st,
        runtime_threads=1,
        loop=Loops.uvloop,
        task_impl=TaskImpl.asyncio,
        http=HTTPModes.http1,
        websockets=False,
        log_level=LogLevels(level if level in LogLevels.__members__ else "info"),
        log_dictconfig=_LOGGING,
        log_access=False,
        workers_kill_timeout=KILL_TIMEOUT,
        respawn_failed_workers=True,
        factory=True,
    )
    server.serve()
