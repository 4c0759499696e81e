"""The emission API every capability uses: `AuditLog.emit`.

::

    audit: AuditLog = services.audit  # auth_service.services.Services
    audit.emit("mfa.failure", outcome="failure", actor_sub=sub, source_ip=ip,
               reason="wrong_code", details=MfaFailureDetails(attempts=3))

`emit` is synchronous and cheap (a few microseconds: scrub, seal into the
writer's hash chain, one ``write()`` to the local spool, one queue append); it
never waits for PostgreSQL and never raises, so it is safe on the hot
forward-auth path. The request id comes from the structlog contextvars (bound
by the edge middleware) and the trace id from the current OpenTelemetry span.
Each event is mirrored as one structlog line, ``event="audit"``.

``details`` is a msgspec Struct of the emitting capability. It is normalised
by `scrub` before it is sealed: keys that name a credential and values that
look like a token are replaced with ``[REDACTED]``, so a secret cannot enter
the audit table even by mistake. Floats become strings and very large integers
become strings, so the hashed encoding survives ``jsonb`` unchanged.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any, Final, Literal, Protocol, get_args

import msgspec
import structlog
from opentelemetry import trace

from auth_service.audit.aggregate import DenialAggregator, Window
from auth_service.audit.chain import EventFields
from auth_service.audit.metrics import AuditMetrics

__all__ = (
    "AGGREGATED_TYPES",
    "EVENT_TYPES",
    "REDACTED",
    "AuditEventType",
    "AuditLog",
    "AuditOutcome",
    "EventSink",
    "scrub",
    "scrub_text",
)

AuditEventType = Literal[
    "login.success",
    "login.failure",
    "logout",
    "logout.backchannel",
    "token.rejected",
    "access.denied",
    "access.allowed",
    "introspection",
    "mfa.enrollment.started",
    "mfa.enrollment.confirmed",
    "mfa.disabled",
    "mfa.success",
    "mfa.failure",
    "mfa.lockout",
    "mfa.recovery_code.used",
    "mfa.admin_reset",
    "session.revoked",
    "refresh.failure",
]
"""Every audit event type (CONTRACT §9)."""

AuditOutcome = Literal["success", "failure", "denied", "allowed"]
"""What happened to the attempt the event records."""

EVENT_TYPES: Final = frozenset(get_args(AuditEventType))
AGGREGATED_TYPES: Final = frozenset({"token.rejected", "access.denied"})
"""Types whose floods are aggregated (`auth_service.audit.aggregate`)."""
REDACTED: Final = "[REDACTED]"

_MAX_TEXT = 1024
_MAX_DEPTH = 6
_SAFE_INT = 2**53
# Substrings of a key that always name a credential, and whole words that do.
_SECRET_PARTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "cookie",
    "authorization",
    "credential",
    "assertion",
    "jwt",
    "bearer",
    "private_key",
    "privatekey",
    "apikey",
    "api_key",
)
_SECRET_WORDS = frozenset({"otp", "totp", "code", "codes", "verifier", "pwd", "pin", "session_id"})
_WORD = re.compile(r"[a-z0-9]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_SECRET_PARAM = re.compile(
    r"(?i)\b(client_secret|code|token|refresh_token|access_token|id_token_hint|password)=[^&\s]+"
)

log = structlog.get_logger("auth_service.audit")


def _secret_key(key: str) -> bool:
    low = key.lower()
    if any(part in low for part in _SECRET_PARTS):
        return True
    return low in _SECRET_WORDS or any(w in _SECRET_WORDS for w in _WORD.findall(low))


def scrub_text(text: str) -> str:
    """A string safe to store: no NUL, tokens and bearer credentials replaced, length capped."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    if " " in text:
        text = _BEARER.sub(REDACTED, text)
    if "=" in text:
        text = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return text[:_MAX_TEXT]


def _scrub_value(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, int):
        return value if -_SAFE_INT < value < _SAFE_INT else str(value)
    if isinstance(value, float):
        return repr(value)
    if depth >= _MAX_DEPTH:
        return "[TRUNCATED]"
    if isinstance(value, Mapping):
        return {
            scrub_text(str(k)): REDACTED if _secret_key(str(k)) else _scrub_value(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub_value(v, depth + 1) for v in value]
    return scrub_text(str(value))


def scrub(details: msgspec.Struct | Mapping[str, Any] | None) -> dict[str, Any]:
    """Normalise event details to JSON-safe builtins with every secret redacted."""
    if details is None:
        return {}
    raw = (
        msgspec.to_builtins(details, str_keys=True)
        if isinstance(details, msgspec.Struct)
        else details
    )
    if not isinstance(raw, Mapping):
        return {"value": _scrub_value(raw, 1)}
    out = _scrub_value(raw, 0)
    assert isinstance(out, dict)
    return out


def _opt_text(value: str | None) -> str | None:
    return None if value is None else scrub_text(value)


def _normal_ip(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return scrub_text(value)[:64]


def _text(details: Mapping[str, Any], key: str) -> str | None:
    value = details.get(key)
    return value if isinstance(value, str) else None


def _trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def _now_us() -> int:
    return time.time_ns() // 1000


class EventSink(Protocol):
    """Where sealed events go (`auth_service.audit.writer.AuditWriter`)."""

    def submit(self, fields: EventFields) -> bool:
        """Seal, spool and queue one event; ``False`` when it could not be kept."""


class AuditLog:
    """The audit emission API of one worker; built by `auth_service.audit.start_audit`."""

    def __init__(
        self,
        sink: EventSink,
        *,
        aggregate_window: float = 10.0,
        metrics: AuditMetrics | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self._sink = sink
        self._metrics = metrics
        self._agg = DenialAggregator(aggregate_window)
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0
        """Events that could not be emitted (see the log for why)."""
        self.aggregated = 0
        """Events counted into an aggregation window instead of written."""

    @property
    def sink(self) -> EventSink:
        """Where events go (the worker's `AuditWriter`)."""
        return self._sink

    def emit(
        self,
        type: AuditEventType,
        *,
        outcome: AuditOutcome,
        actor_sub: str | None = None,
        subject_sub: str | None = None,
        client_id: str | None = None,
        source_ip: str | None = None,
        user_agent: str | None = None,
        reason: str | None = None,
        details: msgspec.Struct | None = None,
        request_id: str | None = None,
    ) -> str | None:
        """Record one event; returns its id, or ``None`` when it was aggregated or not kept.

        Args:
            type: what happened.
            outcome: ``success``/``failure`` for attempts, ``denied``/``allowed`` for decisions.
            actor_sub: ``sub`` of who acted (the caller); ``subject_sub``: whom it concerns.
            reason: machine-readable reason (``token_expired``, ``missing_role``, ...).
            details: a Struct of event-specific data; secrets are redacted.
            request_id: defaults to the ``request_id`` bound in the structlog contextvars.
        """
        try:
            return self._emit(
                type,
                outcome,
                actor_sub,
                subject_sub,
                client_id,
                source_ip,
                user_agent,
                reason,
                details,
                request_id,
            )
        except Exception as exc:  # never fail the request because of auditing
            self.failures += 1
            log.error("audit_emit_failed", audit_type=type, error=repr(exc))
            return None

    def _emit(
        self,
        type: str,
        outcome: str,
        actor_sub: str | None,
        subject_sub: str | None,
        client_id: str | None,
        source_ip: str | None,
        user_agent: str | None,
        reason: str | None,
        details: msgspec.Struct | None,
        request_id: str | None,
    ) -> str | None:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown audit event type {type!r}")
        if request_id is None:
            request_id = structlog.contextvars.get_contextvars().get("request_id")
        ip = _normal_ip(source_ip)
        reason = _opt_text(reason)
        wall = _now_us()
        fields: dict[str, Any] = {
            "type": type,
            "outcome": outcome,
            "actor_sub": _opt_text(actor_sub),
            "subject_sub": _opt_text(subject_sub),
            "client_id": _opt_text(client_id),
            "source_ip": ip,
            "user_agent": _opt_text(user_agent),
            "request_id": _opt_text(request_id),
            "trace_id": _trace_id(),
            "reason": reason,
        }
        scrubbed = scrub(details)
        if self._agg.enabled and type in AGGREGATED_TYPES:
            rule, path, method, host = (
                _text(scrubbed, k) for k in ("rule", "path", "method", "host")
            )
            key = (type, reason, rule, fields["actor_sub"], fields["subject_sub"], ip)
            sample = {**fields, "details": scrubbed}
            with self._lock:
                write, closed = self._agg.admit(
                    key, self._clock(), wall, sample, path=path, method=method, host=host
                )
            if closed is not None:
                self._summary(closed)
            if not write:
                self.aggregated += 1
                if self._metrics is not None:
                    self._metrics.aggregated.inc()
                return None
        return self._submit(fields, scrubbed, 1, wall)

    def _submit(
        self, fields: dict[str, Any], details: dict[str, Any], count: int, wall: int
    ) -> str | None:
        event_id = str(uuid.uuid4())
        kept = self._sink.submit(
            EventFields(id=event_id, occurred_at=wall, details=details, count=count, **fields)
        )
        mirror = {k: v for k, v in fields.items() if v is not None and k != "request_id"}
        log.info(
            "audit",
            audit_id=event_id,
            audit_type=mirror.pop("type"),
            count=count,
            details=details,
            kept=kept,
            **mirror,
        )
        if not kept:
            self.failures += 1
            return None
        return event_id

    def _summary(self, win: Window) -> None:
        """Write the summary of a closed window: who, which rule, how often, which paths."""
        type, reason, rule, actor, subject, ip = win.key
        sample = win.sample
        last: dict[str, Any] = sample.get("details") or {}
        details: dict[str, Any] = {
            "aggregated": True,
            "window_seconds": repr(float(self._agg.window)),
            "first_at_us": win.first_wall,
            "last_at_us": win.last_wall,
            "last_request_id": sample.get("request_id"),
            "paths": list(win.paths),
            "methods": list(win.methods),
            "hosts": list(win.hosts),
            "paths_truncated": win.truncated,
        }
        if rule is not None:
            details["rule"] = rule
        if "status" in last:
            details["status"] = last["status"]
        fields = {
            "type": type,
            "outcome": sample.get("outcome", "denied"),
            "actor_sub": actor,
            "subject_sub": subject,
            "client_id": sample.get("client_id"),
            "source_ip": ip,
            "user_agent": sample.get("user_agent"),
            "request_id": None,
            "trace_id": None,
            "reason": reason,
        }
        self._submit(fields, details, win.suppressed, _now_us())

    def tick(self, *, everything: bool = False) -> int:
        """Write summaries of ended aggregation windows (all windows when ``everything``)."""
        with self._lock:
            closed = self._agg.expired(self._clock(), everything=everything)
        for win in closed:
            try:
                self._summary(win)
            except Exception as exc:
                log.error("audit_summary_failed", error=repr(exc))
        return len(closed)
