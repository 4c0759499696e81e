"""JSON API of CONTRACT §6 (``/mfa/totp``) and the admin reset.

The caller is authenticated by `auth_service.tokens.guards.authenticate_caller`
(a bearer token, else this service's session cookie; refusals are audited).
A cookie-authenticated state-changing request must be ``application/json``:
browsers cannot send that cross-site without a CORS preflight this service
never grants, which (with ``SameSite=Lax``) closes CSRF on the JSON API.
Responses carry ``Cache-Control: no-store``: some hold a secret or codes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from auth_service.errors import BadRequest
from auth_service.mfa.service import Caller, Enrollment, MfaService, TotpStatus
from auth_service.observability.client_address import client_address
from auth_service.resources import Resources, services_of
from auth_service.tokens.guards import authenticate_caller, identity_of, requires_realm_role
from auth_service.tokens.identity import Authenticated

__all__ = (
    "AdminMfaController",
    "CodeIn",
    "ConfirmOut",
    "MfaController",
    "VerifyIn",
    "VerifyOut",
    "caller_from",
    "mfa_service",
)

NO_STORE = [ResponseHeader(name="Cache-Control", value="no-store")]


class CodeIn(msgspec.Struct, forbid_unknown_fields=True):
    """A TOTP code."""

    code: str


class VerifyIn(msgspec.Struct, forbid_unknown_fields=True):
    """A TOTP code or a recovery code (exactly one)."""

    code: str | None = None
    recovery_code: str | None = None


class ConfirmOut(msgspec.Struct):
    """Recovery codes: shown once, stored hashed."""

    recovery_codes: list[str]


class VerifyOut(msgspec.Struct):
    """The caller's sid passed TOTP until ``expires_at``."""

    mfa: str
    expires_at: datetime


def mfa_service(request: Request[Any, Any, Any]) -> MfaService:
    """The worker's `MfaService`."""
    return services_of(request).mfa


def caller_from(request: Request[Any, Any, Any], auth: Authenticated) -> Caller:
    """`Caller` facts of this request (client address by the ``AUTH_TRUSTED_PROXIES`` rule)."""
    res: Resources = request.app.state.resources
    client = auth.raw.get("azp") or auth.raw.get("client_id")
    return Caller(
        subject=auth.subject,
        sid=auth.sid,
        username=auth.claims.username or auth.subject,
        client_id=str(client) if client else None,
        source_ip=client_address(request.scope, res.settings.trusted_proxies),
        user_agent=(request.headers.get("user-agent") or "")[:256] or None,
    )


async def _json_caller(request: Request[Any, Any, Any]) -> Caller:
    auth = await authenticate_caller(request)
    unsafe = request.method not in ("GET", "HEAD")
    if auth.kind == "session" and unsafe and request.content_type[0] != "application/json":
        raise BadRequest("send application/json", reason="unsupported_media_type")
    return caller_from(request, auth.identity)


class MfaController(Controller):
    """``/mfa/totp``: the caller's own TOTP."""

    path = "/mfa/totp"
    response_headers = NO_STORE

    @get("/")
    async def status(
        self, request: Request[Any, Any, Any], mfa: NamedDependency[MfaService]
    ) -> TotpStatus:
        """Enrollment status and recovery codes left."""
        caller = await _json_caller(request)
        return await mfa.status(caller.subject)

    @post("/enrollment", status_code=HTTP_201_CREATED)
    async def enroll(
        self, request: Request[Any, Any, Any], mfa: NamedDependency[MfaService]
    ) -> Enrollment:
        """Start an enrollment: secret, ``otpauth://`` URI and QR code (SVG)."""
        caller = await _json_caller(request)
        return await mfa.enroll(caller)

    @post("/enrollment/confirm", status_code=HTTP_200_OK)
    async def confirm(
        self,
        request: Request[Any, Any, Any],
        mfa: NamedDependency[MfaService],
        data: JSONBody[CodeIn],
    ) -> ConfirmOut:
        """Confirm with a current code; answers the recovery codes, once."""
        caller = await _json_caller(request)
        return ConfirmOut(recovery_codes=await mfa.confirm(caller, data.code))

    @post("/verify", status_code=HTTP_200_OK)
    async def verify(
        self,
        request: Request[Any, Any, Any],
        mfa: NamedDependency[MfaService],
        data: JSONBody[VerifyIn],
    ) -> VerifyOut:
        """Check a code and mark the caller's Keycloak session (sid) as MFA-verified."""
        caller = await _json_caller(request)
        expiry = await mfa.verify(caller, code=data.code, recovery_code=data.recovery_code)
        return VerifyOut(mfa="totp", expires_at=expiry)

    @delete("/", status_code=HTTP_204_NO_CONTENT)
    async def disable(
        self,
        request: Request[Any, Any, Any],
        mfa: NamedDependency[MfaService],
        data: JSONBody[CodeIn],
    ) -> None:
        """Disable TOTP, proven by a current code."""
        caller = await _json_caller(request)
        await mfa.disable(caller, data.code)


class AdminMfaController(Controller):
    """``DELETE /admin/users/{sub}/mfa/totp``: admin reset (realm role ``auth-admin``)."""

    path = "/admin/users"
    guards = [requires_realm_role("auth-admin")]

    @delete("/{sub:str}/mfa/totp", status_code=HTTP_204_NO_CONTENT)
    async def reset(
        self, request: Request[Any, Any, Any], mfa: NamedDependency[MfaService], sub: FromPath[str]
    ) -> None:
        """Remove a user's TOTP credential, lockout and MFA-verified sessions."""
        admin = caller_from(request, identity_of(request))
        await mfa.admin_reset(admin, sub)
