"""The outermost ASGI layer: request id, trace context, access log, HTTP metrics.

It wraps Litestar's ASGI handler (see `auth_service.app`), so it sees every
response, including routing failures (404/405) that app-level middleware never
sees, and the lean forward-auth routes that bypass Litestar entirely.

Tracing is done here with the OpenTelemetry API rather than the generic ASGI
instrumentation: that middleware opens extra spans for every send/receive
message, which costs more than a cached forward-auth decision, and we need the
server span current around our own access-log line so the line carries the
trace id. An incoming W3C ``traceparent`` is always continued; without one a
span is only started when traces are exported.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, Status, StatusCode

from auth_service.errors import PROBLEM_JSON, problem_body
from auth_service.observability import access_log
from auth_service.observability.metrics import Metrics
from auth_service.request_id import request_id

__all__ = (
    "UNMATCHED_ROUTE",
    "ASGIApp",
    "EdgeMiddleware",
    "Message",
    "Receive",
    "Send",
    "method_label",
    "send_500",
)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

log = structlog.get_logger("auth_service.http")
_tracer = trace.get_tracer("auth_service")

_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
UNMATCHED_ROUTE = "unmatched"
"""The one route label of every request no route template matched."""


def method_label(method: str) -> str:
    """The metrics label of an HTTP method: a closed set, anything else is ``OTHER``.

    The server accepts any token as a method; as a label, each new one would be a
    new time series held for the life of the process (CONTRACT §10).
    """
    return method if method in _METHODS else "OTHER"


class LeanRoute(Protocol):
    """A route that can answer without the general path (`ForwardAuthEndpoint.lean`)."""

    async def lean(self, scope: MutableMapping[str, Any], send: Send) -> bool: ...

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: Receive, send: Send
    ) -> None: ...


_CELLS_MAX = 1024
_cells: dict[tuple[str, str, int], tuple[Metrics, Any, Any]] = {}
"""(route, method, status) → the metric cells it updates (and whose they are): one
lookup per request instead of two label lookups and a status rendering."""


def finish(
    metrics: Metrics,
    scope: MutableMapping[str, Any],
    status: int,
    elapsed: float,
    rid: str,
    span: Any = None,
    *,
    log: bool,
) -> str:
    """The HTTP metrics and, with ``log``, the access line of a finished request.

    Returns the request's route label. The one place both paths (`EdgeMiddleware` and
    the lean forward-auth one) count and log a request.
    """
    route = scope.get("path_template") or scope.get("auth_route") or UNMATCHED_ROUTE
    method = scope["method"]
    key = (route, method, status)
    cells = _cells.get(key)
    if cells is None or cells[0] is not metrics:
        if len(_cells) >= _CELLS_MAX:
            _cells.clear()
        label = method_label(method)
        cells = _cells[key] = (
            metrics,
            metrics.http_requests.labels(route, label, str(status)),
            metrics.http_latency.labels(route),
        )
    cells[1].inc()
    cells[2].observe(elapsed)
    if log:
        access_log.emit(
            method=method,
            path=scope["path"],
            route=route,
            status=status,
            elapsed=elapsed,
            request_id=rid,
            span=span,
        )
    return route


class EdgeMiddleware:
    """Request id on every response, trace span, access log line and HTTP metrics."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        access_log: bool = True,
        log_allowed_checks: bool = True,
        always_trace: bool = False,
        fast_routes: Callable[[str], LeanRoute | None] | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.log_allowed_checks = log_allowed_checks
        self.always_trace = always_trace
        self.fast_routes = fast_routes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            try:
                await self.app(scope, receive, send)
            finally:
                if scope["type"] == "lifespan":  # the worker stops: write the last lines
                    access_log.flush()
            return
        fast = self.fast_routes(scope["path"]) if self.fast_routes is not None else None
        rid = request_id(scope)
        rid_header = (b"x-request-id", rid.encode("ascii"))
        start = time.perf_counter()
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                if fast is None:
                    headers = [
                        h for h in message.get("headers", ()) if h[0].lower() != b"x-request-id"
                    ]
                else:  # the lean routes hand over a list and never set the id themselves
                    headers = message["headers"]
                headers.append(rid_header)
                message["headers"] = headers
            await send(message)

        target = fast or self.app

        traceparent = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                traceparent = value
                break
        token = structlog.contextvars.bind_contextvars(request_id=rid)
        span = None
        ctx_token = None
        if traceparent is not None or self.always_trace:
            carrier = {
                k.decode("latin-1"): v.decode("latin-1")
                for k, v in scope["headers"]
                if k in (b"traceparent", b"tracestate")
            }
            parent = extract(carrier)
            span = _tracer.start_span(
                f"{scope['method']} {scope['path']}", context=parent, kind=SpanKind.SERVER
            )
            ctx_token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            try:
                await target(scope, receive, send_with_id)
            except Exception as exc:
                log.error("unhandled_error", path=scope["path"], exc_info=exc)
                if not started:
                    await send_500(send_with_id, rid)
            elapsed = time.perf_counter() - start
            write = self.access_log and (
                fast is None or status != 200 or self.log_allowed_checks
            )  # a forward-auth check allowed: the gateway's line says it (AUTH_ACCESS_LOG_CHECKS)
            route = finish(self.metrics, scope, status, elapsed, rid, span, log=write)
            if span is not None:
                span.update_name(f"{method_label(scope['method'])} {route}")
                span.set_attribute("http.request.method", scope["method"])
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
        finally:
            if span is not None:
                span.end()
            if ctx_token is not None:
                otel_context.detach(ctx_token)
            structlog.contextvars.reset_contextvars(**token)


async def send_500(send: Send, rid: str, *, with_id: bool = False) -> None:
    """A problem+json 500 (``with_id``: with ``X-Request-ID``, for a path that adds none)."""
    body = problem_body(500, "internal error", rid)
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if with_id:
        headers.append((b"x-request-id", rid.encode("ascii")))
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})
