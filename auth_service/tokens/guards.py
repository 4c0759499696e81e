"""Who is calling this service's own endpoints, and the audit event when they are refused.

One function, `authenticate_caller`, authenticates the caller of every own
endpoint: ``/mfa/*``, the ``/auth/mfa`` pages, ``/auth/userinfo``,
``/tokens/introspect`` and ``/admin/*``. It applies the single precedence of
`auth_service.tokens.credentials` (``Authorization: Bearer`` first, else the
session cookie, else 401 with ``WWW-Authenticate: Bearer``), the same one
forward-auth applies. Machine and admin endpoints accept bearer tokens only
(``sessions=False``): a session cookie is an ambient credential, and those
endpoints have no CSRF token.

`requires_caller` / `requires_realm_role` are the Litestar guards built on it;
the verified caller is kept in ``scope["state"]["caller"]`` for the handler
(`caller_of`, `identity_of`).

Every refusal on ``/admin/*``, ``/tokens/*`` and ``/mfa/*`` is an audit event
(CONTRACT §9), like a forward-auth denial:

=====================================  ==================  ========  ============================
refusal                                type                status    actor / subject
=====================================  ==================  ========  ============================
no credentials, not a bearer token     ``access.denied``   401       —
forged, expired, revoked token;        ``token.rejected``  401       —
unknown or ended session
valid caller without the realm role    ``access.denied``   403       the caller's ``sub``
=====================================  ==================  ========  ============================

with the reason (``authentication_required``, ``token_expired``,
``missing_role``, ...), the client address (``AUTH_TRUSTED_PROXIES`` rule) and
the method, host and path in the details. Never the credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from auth_service.config import Settings
from auth_service.errors import AccessDenied, AuthError, NotAuthenticated
from auth_service.observability.client_address import client_address
from auth_service.resources import services_of
from auth_service.tokens.credentials import CredentialKind, presented_credential
from auth_service.tokens.identity import Authenticated
from auth_service.tokens.rejections import TokenRejected, bearer_challenge

__all__ = (
    "AUDITED_PREFIXES",
    "CallerAuth",
    "DenialDetails",
    "audit_denial",
    "authenticate_caller",
    "caller_of",
    "identity_of",
    "requires_caller",
    "requires_realm_role",
)

Connection = ASGIConnection[Any, Any, Any, Any]
AUDITED_PREFIXES = ("/admin/", "/tokens/", "/mfa/")
"""Own endpoints whose refusals are audit events (CONTRACT §9)."""


@dataclass(frozen=True, slots=True)
class CallerAuth:
    """An authenticated caller of an own endpoint."""

    identity: Authenticated
    kind: CredentialKind
    """``bearer`` or ``session``: which credential authenticated it."""
    session_id: str | None = None
    """The session cookie value, for session callers."""

    @property
    def csrf_binding(self) -> str:
        """What this caller's CSRF tokens are bound to (`auth_service.sessions.csrf`).

        The session id for a session caller; a bearer caller's credential cannot
        be sent by a cross-site form, so its token's sid (or subject) suffices.
        """
        if self.session_id is not None:
            return self.session_id
        return f"bearer:{self.identity.sid or self.identity.subject}"


class DenialDetails(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Details of an own-endpoint denial event: what was asked (never credentials)."""

    method: str
    path: str
    status: int
    host: str | None = None
    required_role: str | None = None


def _raw_header(scope: Any, name: bytes) -> bytes | None:
    values = [v for k, v in scope.get("headers", ()) if k == name]
    if not values:
        return None
    return b"; ".join(values) if name == b"cookie" else values[0]


def audit_denial(
    connection: Connection,
    exc: AuthError,
    identity: Authenticated | None = None,
    *,
    required_role: str | None = None,
) -> None:
    """Record the refusal ``exc`` of a caller of ``/admin/*``, ``/tokens/*`` or ``/mfa/*``.

    Other paths (``/auth/userinfo``, the ``/auth/mfa`` pages a browser without a
    session is sent away from) are not recorded, as CONTRACT §9 lists these three.
    """
    services = services_of(connection)
    audit = services.audit
    path: str = connection.scope.get("path", "")
    if not path.startswith(AUDITED_PREFIXES):
        return
    settings: Settings = services.resources.settings
    rejected = isinstance(exc, TokenRejected)
    sub = identity.subject if identity is not None else None
    host = connection.headers.get("host")
    agent = connection.headers.get("user-agent")
    audit.emit(
        "token.rejected" if rejected else "access.denied",
        outcome="failure" if rejected else "denied",
        actor_sub=sub,
        subject_sub=sub,
        client_id=identity.client_id if identity is not None else None,
        source_ip=client_address(connection.scope, settings.trusted_proxies),
        user_agent=agent[:256] if agent else None,
        reason=exc.reason,
        details=DenialDetails(
            method=str(connection.scope.get("method", "GET")),
            path=path,
            status=exc.status,
            host=host[:255] if host else None,
            required_role=required_role,
        ),
    )


async def authenticate_caller(connection: Connection, *, sessions: bool = True) -> CallerAuth:
    """The caller of an own endpoint, by the one precedence (bearer, else session cookie).

    A refusal on ``/admin/*``, ``/tokens/*`` or ``/mfa/*`` is audited here.

    Args:
        sessions: whether this endpoint accepts the session cookie.

    Raises:
        NotAuthenticated: no usable credential (``TokenRejected`` for a bad one).
        DependencyUnavailable: the authenticator or the session store is down.
    """
    services = services_of(connection)
    resolver = services.sessions if sessions else None
    cookie_name = None if resolver is None else resolver.cookie_name
    scope = connection.scope
    presented = presented_credential(
        _raw_header(scope, b"authorization"), _raw_header(scope, b"cookie"), cookie_name
    )
    try:
        if presented is None or not presented.value:
            wanted = "a bearer token or a session" if cookie_name is not None else "a bearer token"
            raise NotAuthenticated(
                f"{wanted} is required", headers={"WWW-Authenticate": bearer_challenge()}
            )
        if presented.kind == "bearer":
            identity: Authenticated = await services.authenticator.authenticate(presented.value)
            return CallerAuth(identity, "bearer")
        assert resolver is not None  # a session is only presented when sessions are accepted
        identity = await resolver.resolve(presented.value)
        return CallerAuth(identity, "session", presented.value)
    except NotAuthenticated as exc:
        audit_denial(connection, exc)
        raise


def requires_caller(role: str | None = None, *, sessions: bool = True) -> Any:
    """Guard: an authenticated caller (`authenticate_caller`), holding realm ``role`` if given."""

    async def guard(connection: Connection, _: BaseRouteHandler) -> None:
        caller = await authenticate_caller(connection, sessions=sessions)
        if role is not None and role not in caller.identity.realm_roles:
            exc = AccessDenied(f"realm role {role!r} required", reason="missing_role")
            audit_denial(connection, exc, caller.identity, required_role=role)
            raise exc
        connection.scope.setdefault("state", {})["caller"] = caller

    return guard


def requires_realm_role(role: str) -> Any:
    """Guard of machine and admin endpoints: a bearer token whose realm roles include ``role``."""
    return requires_caller(role, sessions=False)


def caller_of(connection: Connection) -> CallerAuth:
    """The caller a `requires_caller` guard verified."""
    caller: CallerAuth = connection.scope["state"]["caller"]
    return caller


def identity_of(connection: Connection) -> Authenticated:
    """The identity a `requires_caller` / `requires_realm_role` guard verified."""
    return caller_of(connection).identity
