"""What the browser flows share: who is calling, the return URL rule, their audit emitter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auth_service.audit.sink import AuditSink
from auth_service.config import Settings
from auth_service.oidc.redirects import redirect_target

__all__ = ("ClientInfo", "FlowAudit", "return_url")


@dataclass(slots=True, frozen=True)
class ClientInfo:
    """Who is calling, for audit events."""

    ip: str | None = None
    user_agent: str | None = None


def return_url(settings: Settings, rd: str | None) -> str:
    """``rd`` as an absolute URL if it is allowed (default: the public URL), else 400."""
    return redirect_target(rd, settings.allowed_redirect_hosts, settings.public_url)


class FlowAudit:
    """Emits the flows' audit events with this client's id and the caller's address."""

    def __init__(self, audit: AuditSink | None, client_id: str) -> None:
        self.audit = audit
        self.client_id = client_id

    def emit(self, type: str, outcome: str, client: ClientInfo, **fields: Any) -> None:
        """One event (nothing when no audit sink is given)."""
        if self.audit is not None:
            self.audit.emit(
                type,
                outcome=outcome,
                client_id=self.client_id,
                source_ip=client.ip,
                user_agent=client.user_agent,
                **fields,
            )
