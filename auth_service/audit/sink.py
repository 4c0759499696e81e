"""`AuditSink`: what capabilities need of `auth_service.audit.events.AuditLog`.

One protocol for every emitter (sessions, browser login, MFA), so a test may
hand in a recorder while the type checker still matches `AuditLog` exactly.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ("AuditSink",)


class AuditSink(Protocol):
    """Records one audit event; returns its id, or ``None`` when aggregated or not kept."""

    def emit(
        self,
        type: Any,
        *,
        outcome: Any,
        actor_sub: str | None = None,
        subject_sub: str | None = None,
        client_id: str | None = None,
        source_ip: str | None = None,
        user_agent: str | None = None,
        reason: str | None = None,
        details: Any = None,
        request_id: str | None = None,
    ) -> str | None: ...
