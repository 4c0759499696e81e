"""Forward-auth decisions as audit events (CONTRACT §9): denials always, allowed ones per rule.

Whenever the caller was identified (a valid token or session, whatever the
outcome: a missing role, a claim mismatch, MFA required), its ``sub`` is the
event's actor and subject, and the rule, method, host and path are in the
details. Denials and token rejections are aggregated by the audit log (same
type, reason, rule, caller and source within a window), so a flood of bad tokens costs the
request path one cheap in-memory call each and the table one row per window.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import msgspec

from auth_service.audit.events import AuditLog
from auth_service.forward_auth.decision import Verdict
from auth_service.forward_auth.endpoint import DecisionHook
from auth_service.forward_auth.gateways import ForwardedRequest
from auth_service.observability.client_address import client_address

__all__ = ("DecisionDetails", "audit_hook")


class DecisionDetails(msgspec.Struct, omit_defaults=True):
    """What was asked and which rule decided (never credentials)."""

    method: str | None = None
    host: str | None = None
    path: str | None = None
    rule: str | None = None
    status: int = 0


def audit_hook(audit: AuditLog, trusted_proxies: tuple[str, ...]) -> DecisionHook:
    """A `ForwardAuthEndpoint` hook that emits the decision's audit event.

    The source address is the original client's by the ``AUTH_TRUSTED_PROXIES``
    rule (`auth_service.observability.client_address`): the gateway is the peer.
    """

    def hook(
        verdict: Verdict, req: ForwardedRequest | None, scope: MutableMapping[str, Any], rid: str
    ) -> None:
        caller = verdict.caller if verdict.caller is not None else verdict.identity
        path = req.target.split("?", 1)[0] if req is not None else None
        details = DecisionDetails(
            method=req.method if req is not None else None,
            host=req.host if req is not None else None,
            path=path,
            rule=verdict.rule,
            status=verdict.status,
        )
        agent = req.headers.get(b"user-agent") if req is not None else None
        if verdict.outcome == "allow":
            kind, outcome = "access.allowed", "allowed"
        elif verdict.outcome == "invalid_token":
            kind, outcome = "token.rejected", "failure"
        else:
            kind, outcome = "access.denied", "denied"
        audit.emit(
            kind,  # type: ignore[arg-type]
            outcome=outcome,  # type: ignore[arg-type]
            actor_sub=caller.sub if caller is not None else None,
            subject_sub=caller.sub if caller is not None else None,
            client_id=caller.client_id if caller is not None else None,
            source_ip=client_address(scope, trusted_proxies),
            user_agent=agent.decode("latin-1")[:256] if agent else None,
            reason=verdict.reason,
            details=details,
            request_id=rid,
        )

    return hook
