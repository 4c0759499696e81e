"""The access log line: same keys as structlog's lines, redacted, buffered off the request."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator

import pytest

from auth_service.observability import access_log
from auth_service.observability.logging import configure_logging
from tests.support.processes import eventually


class _BinaryStream(io.TextIOWrapper):
    """A text stream with a binary ``buffer``, like ``sys.stdout``."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8")

    def lines(self) -> list[dict[str, object]]:
        raw = self.buffer.getvalue()  # type: ignore[attr-defined]
        assert isinstance(raw, bytes)
        return [json.loads(line) for line in raw.splitlines()]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    configure_logging(fmt="json", level="info", stream=io.StringIO(), cache=False)


def _emit(path: str = "/authz/auth-request", rid: str = "rid-1") -> None:
    access_log.emit(
        method="GET",
        path=path,
        route="/authz/auth-request",
        status=200,
        elapsed=0.0012345,
        request_id=rid,
    )


def test_line_has_the_keys_of_a_structlog_line() -> None:
    """event, level, timestamp, pid and request_id as structlog renders them, plus the fields."""
    buf = io.StringIO()
    configure_logging(fmt="json", level="info", stream=buf, cache=False)
    _emit()
    (line,) = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert line["event"] == "request"
    assert line["level"] == "info"
    assert line["pid"] == os.getpid()
    assert line["request_id"] == "rid-1"
    assert line["status"] == 200
    assert line["duration_ms"] == 1.234
    assert line["route"] == "/authz/auth-request"
    assert str(line["timestamp"]).endswith("Z") and "T" in str(line["timestamp"])
    assert "trace_id" not in line


def test_credentials_in_the_path_are_redacted() -> None:
    """A JWT in the path never reaches the log (the same redaction as every other line)."""
    buf = io.StringIO()
    configure_logging(fmt="json", level="info", stream=buf, cache=False)
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    _emit(path=f"/authz/ext-authz/x/{jwt}")
    assert jwt not in buf.getvalue()
    assert "[REDACTED]" in buf.getvalue()


def test_level_above_info_writes_no_access_line() -> None:
    """With AUTH_LOG_LEVEL=warning there is no access line (as with structlog's filter)."""
    buf = io.StringIO()
    configure_logging(fmt="json", level="warning", stream=buf, cache=False)
    _emit()
    assert buf.getvalue() == ""


async def test_binary_stream_is_written_by_the_loop_not_the_request() -> None:
    """On a real stream the line is buffered, then written out by the event loop."""
    stream = _BinaryStream()
    configure_logging(fmt="json", level="info", stream=stream, cache=False)
    _emit(rid="a")
    _emit(rid="b")
    assert stream.lines() == []  # nothing written while the request runs
    await eventually(lambda: len(stream.lines()) == 2, "the buffered lines written", timeout=5)
    assert [line["request_id"] for line in stream.lines()] == ["a", "b"]


def test_binary_stream_outside_a_loop_writes_at_once() -> None:
    """Without a running loop nothing can flush later, so the line is written at once."""
    stream = _BinaryStream()
    configure_logging(fmt="json", level="info", stream=stream, cache=False)
    _emit(rid="now")
    assert [line["request_id"] for line in stream.lines()] == ["now"]


def test_console_format_goes_through_structlog() -> None:
    """The development console format keeps structlog's rendering (not JSON)."""
    buf = io.StringIO()
    configure_logging(fmt="console", level="info", stream=buf, cache=False)
    _emit()
    out = buf.getvalue()
    assert "request" in out and "/authz/auth-request" in out
    assert not out.startswith("{")


async def test_lines_are_written_when_the_lifespan_ends() -> None:
    """A worker that stops (lifespan shutdown) writes its buffered lines first."""
    from auth_service.observability.edge import EdgeMiddleware
    from auth_service.observability.metrics import Metrics

    stream = _BinaryStream()
    configure_logging(fmt="json", level="info", stream=stream, cache=False)

    async def lifespan_app(scope: object, receive: object, send: object) -> None:
        _emit(rid="last")  # buffered: the loop has not flushed yet
        assert stream.lines() == []

    edge = EdgeMiddleware(lifespan_app, metrics=Metrics())  # type: ignore[arg-type]
    await edge({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert [line["request_id"] for line in stream.lines()] == ["last"]
