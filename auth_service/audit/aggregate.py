"""Aggregation of high-volume denials (a flood of bad tokens must not flood the table).

For the aggregated types, events are keyed by ``(type, reason, rule, actor,
subject, source_ip)`` (``None`` = anonymous): only events that say the same
thing about the same caller are merged, so an aggregate never hides who was
denied or by which rule (CONTRACT §9). The first event of a key is written as
usual and opens a window; further events of that key inside the window are
only counted, with their first and last time and the distinct paths (and
methods, hosts) they asked for, up to `MAX_PATHS` (then ``paths_truncated``). When
the window ends (checked on the next event and by the periodic
`AuditLog.tick`), one summary event is written with ``count`` = the number
suppressed, the same actor and subject, the rule, and those paths. A steady flood
of one key therefore costs at most two rows per window.

The counts of a window that is still open live in memory only: a crash loses
at most one window of *suppressed repeats*, never the first event of a key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ("MAX_PATHS", "AggregateKey", "DenialAggregator", "Window")

AggregateKey = tuple[str, str | None, str | None, str | None, str | None, str | None]
"""``(type, reason, rule, actor sub, subject sub, source_ip)``."""

MAX_PATHS = 20
"""Distinct paths (and methods) a summary lists; beyond it ``paths_truncated`` is set."""


@dataclass(slots=True)
class Window:
    """One open aggregation window."""

    key: AggregateKey
    opened: float
    """Monotonic time the window opened (the first, individually written event)."""
    first_wall: int = 0
    """Wall-clock µs of the first suppressed event."""
    last_wall: int = 0
    """Wall-clock µs of the last suppressed event."""
    suppressed: int = 0
    sample: dict[str, Any] = field(default_factory=dict)
    """Fields of the last suppressed event (client id, user agent, request id)."""
    paths: list[str] = field(default_factory=list)
    """Distinct paths of the suppressed events, in order of first appearance (bounded)."""
    methods: list[str] = field(default_factory=list)
    """Distinct methods of the suppressed events (bounded)."""
    hosts: list[str] = field(default_factory=list)
    """Distinct hosts of the suppressed events (bounded)."""
    truncated: bool = False
    """More distinct paths (or methods, hosts) were seen than are listed."""

    def note(self, path: str | None, method: str | None, host: str | None) -> None:
        """Remember a suppressed event's path, method and host (bounded in count and length)."""
        for raw, seen in ((path, self.paths), (method, self.methods), (host, self.hosts)):
            if raw is None:
                continue
            value = raw if len(raw) <= MAX_VALUE_LENGTH else raw[:MAX_VALUE_LENGTH] + "…"
            if value in seen:
                continue
            if len(seen) < MAX_PATHS:
                seen.append(value)
            else:
                self.truncated = True


MAX_VALUE_LENGTH = 256
"""Longest path, method or host a summary keeps (longer ones are cut, marked with "…"):
an open window must not hold 20 paths of 8 KiB each for every source address."""


class DenialAggregator:
    """Decides which denials are written individually and which are only counted.

    Not thread-safe by itself; `AuditLog` calls it under its lock.
    """

    def __init__(self, window: float, *, max_keys: int = 10_000) -> None:
        self.window = window
        self.max_keys = max_keys
        self._open: dict[AggregateKey, Window] = {}

    @property
    def enabled(self) -> bool:
        """Aggregation is on (a window of 0 turns it off)."""
        return self.window > 0

    def admit(
        self,
        key: AggregateKey,
        now: float,
        wall: int,
        sample: dict[str, Any],
        *,
        path: str | None = None,
        method: str | None = None,
        host: str | None = None,
    ) -> tuple[bool, Window | None]:
        """Register one event (``path``, ``method``, ``host``: what it asked for, if known).

        Returns ``(write_it, closed)``: whether the event itself is written, and
        a window that just expired for this key (to be written as a summary).
        """
        win = self._open.get(key)
        closed: Window | None = None
        if win is not None and now - win.opened >= self.window:
            closed = self._open.pop(key)
            win = None
            if closed.suppressed == 0:
                closed = None
        if win is None:
            if len(self._open) < self.max_keys:
                self._open[key] = Window(key=key, opened=now)
            return True, closed
        if win.suppressed == 0:
            win.first_wall = wall
        win.suppressed += 1
        win.last_wall = wall
        win.sample = sample
        win.note(path, method, host)
        return False, closed

    def expired(self, now: float, *, everything: bool = False) -> list[Window]:
        """Remove and return the windows that ended (all of them when ``everything``)."""
        done = [k for k, w in self._open.items() if everything or now - w.opened >= self.window]
        closed = [self._open.pop(k) for k in done]
        return [w for w in closed if w.suppressed > 0]
