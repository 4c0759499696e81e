"""Structured logging: structlog configured once, JSON lines by default.

Every line carries the ``request_id`` and the current trace/span ids (from
contextvars and the active OpenTelemetry span). `redact_secrets` runs before
rendering and removes credentials wherever they appear in an event: under a
sensitive key at any depth, or embedded in a string (bearer tokens, JWTs).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import msgspec
import structlog
from opentelemetry import trace

__all__ = ("REDACTED", "configure_logging", "redact_secrets", "scrub_text")

REDACTED = "[REDACTED]"

_SENSITIVE_KEYS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "logout_token",
        "id_token_hint",
        "client_secret",
        "oidc_client_secret",
        "secret",
        "secret_keys",
        "password",
        "code",
        "code_verifier",
        "recovery_code",
        "recovery_codes",
        "otp",
        "totp",
        "x-auth-assertion",
        "assertion",
        "session",
        "session_id",
    }
)
# A JWT (three base64url parts, the first one a JSON header) or a bearer credential.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_SECRET_PARAM = re.compile(
    r"(?i)\b(client_secret|code|token|refresh_token|access_token|id_token_hint|password)=[^&\s]+"
)


def _scrub_text(text: str) -> str:
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    if " " in text:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    if "=" in text:
        text = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return text


scrub_text = _scrub_text
"""Credentials embedded in a string replaced (the access log's method and path)."""


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if depth > 6:
        return value
    if isinstance(value, Mapping):
        return {
            k: REDACTED
            if isinstance(k, str) and k.lower() in _SENSITIVE_KEYS
            else _scrub(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    return value


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: replaces credentials anywhere in the event with ``[REDACTED]``."""
    for key in list(event):
        if key.lower() in _SENSITIVE_KEYS:
            event[key] = REDACTED
        else:
            event[key] = _scrub(event[key])
    return event


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: adds ``trace_id``/``span_id`` of the active OpenTelemetry span."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event.setdefault("span_id", format(ctx.span_id, "016x"))
    return event


def add_pid(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the worker's process id (several workers share one log stream)."""
    event["pid"] = os.getpid()
    return event


def _json(event: Mapping[str, Any], **_: Any) -> bytes:
    return msgspec.json.encode(event, enc_hook=str)


def configure_logging(
    *, fmt: str = "json", level: str = "info", stream: TextIO | None = None, cache: bool = True
) -> None:
    """Configure structlog (and route stdlib logging through the same renderer).

    Args:
        fmt: ``"json"`` for JSON lines, ``"console"`` for a human-readable format.
        level: lowest level written.
        stream: where lines go (default stdout); tests pass a buffer.
        cache: cache loggers on first use; tests turn it off to reconfigure.
    """
    out = stream or sys.stdout
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        factory: Any = structlog.PrintLoggerFactory(out)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_json)
        factory = (
            structlog.BytesLoggerFactory(out.buffer)
            if hasattr(out, "buffer")
            else structlog.PrintLoggerFactory(out)
        )
        if not hasattr(out, "buffer"):
            renderer = structlog.processors.JSONRenderer(
                serializer=lambda e, **_: _json(e).decode()
            )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            add_trace_ids,
            add_pid,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=cache,
    )
    from auth_service.observability import access_log  # imports this module

    access_log.configure(out, fmt=fmt, level=numeric)
    root = logging.getLogger()
    root.handlers[:] = [_StructlogHandler()]
    root.setLevel(max(numeric, logging.WARNING))


class _StructlogHandler(logging.Handler):
    """Sends stdlib records (libraries, granian) through structlog: JSON and redacted."""

    def emit(self, record: logging.LogRecord) -> None:
        log = structlog.get_logger(record.name)
        kw: dict[str, Any] = {"logger": record.name}
        if record.exc_info:
            kw["exc_info"] = record.exc_info
        log.log(record.levelno, record.getMessage(), **kw)
