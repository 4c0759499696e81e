"""The per-request access log line, off structlog's processor chain.

Every request writes one line, so it is the one log line whose cost matters: the
structlog chain (contextvars merge, level, trace ids, pid, ISO timestamp, the
recursive redaction walk, JSON) measured about a third of a cached forward-auth
decision. Here the line is a `msgspec.Struct` with a fixed set of fields, encoded
in one call; the only free-form values (method and path) go through the same
redaction as every other line (`auth_service.observability.logging`), and the
line has the same keys the structlog chain would give it.

Lines are appended to an in-memory buffer and written out by the event loop
shortly after (``FLUSH_DELAY``) or at once when the buffer is large, so a request
never waits for the write. A stream without a binary ``buffer`` (a test's
``io.StringIO``) is written to directly. The console format (development) keeps
structlog's rendering.

`configure` is called by `configure_logging`; until then, and for the console
format, `AccessLog.emit` falls back to structlog.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import time
from typing import IO, Any, TextIO

import msgspec
import structlog

from auth_service.observability.logging import scrub_text

__all__ = ("FLUSH_DELAY", "AccessLine", "configure", "emit", "flush")

FLUSH_DELAY = 0.05
"""Seconds a line may wait in the buffer before the event loop writes it."""
FLUSH_SIZE = 64 * 1024
"""Buffered bytes that trigger a write at once."""

_log = structlog.get_logger("auth_service.http")


class AccessLine(msgspec.Struct, omit_defaults=True):
    """One access-log line (JSON), with the keys of every other structlog line."""

    event: str
    method: str
    path: str
    route: str
    status: int
    duration_ms: float
    request_id: str
    level: str
    pid: int
    timestamp: str
    trace_id: str | None = None
    span_id: str | None = None


_encode = msgspec.json.Encoder().encode


class _Sink:
    """Where JSON lines go: a buffered binary stream or a text stream."""

    __slots__ = ("binary", "buf", "pending", "text")

    def __init__(self, stream: TextIO) -> None:
        binary = getattr(stream, "buffer", None)
        self.binary: IO[bytes] | None = binary
        self.text: TextIO | None = None if binary is not None else stream
        self.buf = bytearray()
        self.pending = False

    def write(self, line: bytes) -> None:
        if self.binary is None:
            assert self.text is not None
            self.text.write(line.decode())
            return
        self.buf += line
        if len(self.buf) >= FLUSH_SIZE:
            self.flush()
        elif not self.pending:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self.pending = True
            loop.call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        self.pending = False
        if not self.buf or self.binary is None:
            return
        data = bytes(self.buf)
        self.buf.clear()
        try:
            self.binary.write(data)
            self.binary.flush()
        except (OSError, ValueError):  # stdout closed or gone: the lines are lost, not the request
            pass


_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)

_sink: _Sink | None = None
_enabled = True
_second = -1
_second_text = ""


def configure(stream: TextIO | None, *, fmt: str, level: int) -> None:
    """Set where access lines go (called by `configure_logging`).

    Args:
        stream: the log stream; ``None`` or ``fmt="console"`` routes lines through structlog.
        fmt: the log format.
        level: the lowest level written; access lines are ``info``.
    """
    global _sink, _enabled
    flush()
    _enabled = level <= logging.INFO
    _sink = None if stream is None or fmt != "json" else _Sink(stream)


def flush() -> None:
    """Write out any buffered lines."""
    if _sink is not None:
        _sink.flush()


atexit.register(flush)


def _timestamp(now: float) -> str:
    """``now`` as structlog's ISO UTC timestamp, the date part formatted once a second."""
    global _second, _second_text
    sec = int(now)
    if sec != _second:
        _second = sec
        _second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_second_text}.{int((now - sec) * 1e6):06d}Z"


def emit(
    *,
    method: str,
    path: str,
    route: str,
    status: int,
    elapsed: float,
    request_id: str,
    span: Any = None,
) -> None:
    """Write the access line of one request (``span``: its OpenTelemetry span, if any)."""
    if not _enabled:
        return
    sink = _sink
    if sink is None:
        _log.info(
            "request",
            method=method,
            path=path,
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 3),
        )
        return
    line = AccessLine(
        event="request",
        method=scrub_text(method),
        path=scrub_text(path),
        route=route,
        status=status,
        duration_ms=round(elapsed * 1000, 3),
        request_id=request_id,
        level="info",
        pid=_pid,
        timestamp=_timestamp(time.time()),
    )
    if span is not None:
        ctx = span.get_span_context()
        if ctx.is_valid:
            line.trace_id = format(ctx.trace_id, "032x")
            line.span_id = format(ctx.span_id, "016x")
    sink.write(_encode(line) + b"\n")
