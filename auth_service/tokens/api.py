"""Token endpoints for other microservices and admins.

* ``POST /tokens/introspect`` (RFC 7662, CONTRACT §7): the caller's own bearer token
  must carry the realm role ``token-introspector``; anything invalid is
  ``{"active": false}``, never an error that says why.
* ``POST /admin/revocations`` (realm role ``auth-admin``): revoke a Keycloak session
  (``sid``) or one token (``jti``) for every worker and instance.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, URLEncodedBody
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT
from redis.exceptions import RedisError

from auth_service.audit import AuditLog
from auth_service.errors import AuthError, BadRequest, DependencyUnavailable
from auth_service.mfa.state import MfaState
from auth_service.tokens.guards import identity_of, requires_realm_role
from auth_service.tokens.identity import Authenticated
from auth_service.tokens.revocation import Revocations
from auth_service.tokens.service import Authenticator

__all__ = ("Introspection", "RevocationRequest", "TokenController")


class IntrospectRequest(msgspec.Struct):
    """RFC 7662 request form."""

    token: str
    token_type_hint: str | None = None


class Introspection(msgspec.Struct, omit_defaults=True):
    """RFC 7662 response plus the service's view of the identity."""

    active: bool
    sub: str | None = None
    username: str | None = None
    client_id: str | None = None
    scope: str | None = None
    exp: int | None = None
    iat: int | None = None
    iss: str | None = None
    aud: list[str] | None = None
    token_type: str | None = None
    sid: str | None = None
    roles: list[str] | None = None
    client_roles: dict[str, list[str]] | None = None
    attributes: dict[str, Any] | None = None
    mfa: str | None = None


class RevocationRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of ``sid`` or ``jti``."""

    sid: str | None = None
    jti: str | None = None
    ttl: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """Seconds to keep the revocation (default: the longest token lifetime, 24 h)."""


_INACTIVE = Introspection(active=False)


class TokenController(Controller):
    """Introspection and revocation."""

    @post(
        "/tokens/introspect",
        status_code=HTTP_200_OK,
        guards=[requires_realm_role("token-introspector")],
    )
    async def introspect(
        self,
        request: Request[Any, Any, Any],
        data: URLEncodedBody[IntrospectRequest],
        authenticator: NamedDependency[Authenticator],
        audit: NamedDependency[AuditLog],
        mfa_state: NamedDependency[MfaState],
    ) -> Introspection:
        """Introspect an access token for an authorized caller."""
        caller = identity_of(request)
        auth: Authenticated | None
        try:
            auth = await authenticator.authenticate(data.token)
        except AuthError:
            auth = None
        audit.emit(
            "introspection",
            outcome="failure" if auth is None else "success",
            actor_sub=caller.subject,
            subject_sub=None if auth is None else auth.subject,
            client_id=caller.client_id,
            reason="inactive" if auth is None else None,
        )
        if auth is None:
            return _INACTIVE
        c = auth.claims
        scope = c.raw.get("scope")
        return Introspection(
            active=True,
            sub=c.sub,
            username=c.username,
            client_id=c.client_id,
            scope=scope if isinstance(scope, str) else None,
            exp=int(c.exp),
            iat=int(c.iat) if c.iat is not None else None,
            iss=c.iss,
            aud=list(c.aud) or None,
            token_type="Bearer",  # noqa: S106
            sid=c.sid,
            roles=sorted(c.realm_roles),
            client_roles={k: sorted(v) for k, v in c.client_roles.items()},
            attributes=dict(auth.attributes),
            mfa="totp" if mfa_state.is_verified(c.sid) else "none",
        )

    @post(
        "/admin/revocations",
        status_code=HTTP_204_NO_CONTENT,
        guards=[requires_realm_role("auth-admin")],
    )
    async def revoke(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RevocationRequest],
        revocations: NamedDependency[Revocations],
        audit: NamedDependency[AuditLog],
    ) -> None:
        """Revoke a session id or a token id everywhere."""
        if (data.sid is None) == (data.jti is None):
            raise BadRequest("give exactly one of sid or jti", reason="invalid_request")
        kind: Literal["sid", "jti"] = "sid" if data.sid is not None else "jti"
        value = data.sid if data.sid is not None else data.jti
        assert value is not None
        try:
            await revocations.revoke(kind, value, data.ttl)
        except (RedisError, OSError) as exc:
            raise DependencyUnavailable(
                "revocation store unavailable", reason="redis_down"
            ) from exc
        audit.emit(
            "session.revoked",
            outcome="success",
            actor_sub=identity_of(request).subject,
            reason=f"admin_revoke_{kind}",
        )
