"""``/auth/*``: browser login, callback, userinfo, logout and back-channel logout (CONTRACT §5).

The handlers only translate HTTP (query, cookies, forms, redirects, pages);
the protocol lives in `auth_service.oidc.login` and `.logout`, sessions in
`auth_service.sessions`. Browser-facing failures of the login flow get a small
HTML page (with the request id) when the client accepts HTML, and the usual
problem+json otherwise. Redis being down is a 503, never a 500.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import msgspec
import structlog
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.status_codes import HTTP_200_OK
from redis.exceptions import RedisError

from auth_service.config import Settings
from auth_service.errors import (
    AccessDenied,
    AuthError,
    BadRequest,
    DependencyUnavailable,
    TooManyAttempts,
    accepts_html,
    problem_body,
)
from auth_service.mfa.service import MfaService
from auth_service.mfa.state import MfaState
from auth_service.observability.client_address import client_address
from auth_service.oidc.common import ClientInfo
from auth_service.oidc.login import BrowserLogin, LoginFailed, LoginRejected, LoginResult
from auth_service.oidc.logout import Logout
from auth_service.oidc.pages import REDIRECT_HEADERS, error_page, logout_page
from auth_service.oidc.redirects import redirect_target
from auth_service.policy import PolicyHolder, normalize_path
from auth_service.request_id import request_id
from auth_service.sessions.csrf import CsrfTokens
from auth_service.sessions.resolver import SessionResolver
from auth_service.stores.rate_limit import FixedWindowLimiter
from auth_service.tokens.guards import authenticate_caller
from auth_service.tokens.identity import Authenticated

__all__ = ("BrowserLoginController", "UserInfo")

log = structlog.get_logger("auth_service.oidc")

_BINDING_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class UserInfo(msgspec.Struct):
    """``GET /auth/userinfo``: the caller's identity."""

    sub: str
    username: str | None
    email: str | None
    roles: list[str]
    """Realm roles, sorted."""
    client_roles: dict[str, list[str]]
    attributes: dict[str, Any]
    """Configured custom attribute claims (``AUTH_CLAIM_HEADERS``), by claim path."""
    mfa: str
    """``totp`` when the session passed TOTP, else ``none``."""


def _client(request: Request[Any, Any, Any]) -> ClientInfo:
    settings: Settings = request.app.state.settings
    ip = client_address(request.scope, settings.trusted_proxies)
    return ClientInfo(ip=ip, user_agent=(request.headers.get("user-agent") or "")[:512] or None)


def _secure(flow: BrowserLogin | Logout) -> bool:
    return flow.settings.public_url.startswith("https://")


def _binding_cookie(login: BrowserLogin) -> str:
    return "__Host-auth_login" if _secure(login) else "auth_login"


def _cookie(flow: BrowserLogin | Logout, key: str, value: str, max_age: int | None) -> Cookie:
    return Cookie(
        key=key,
        value=value,
        max_age=max_age,
        path="/",
        secure=_secure(flow),
        httponly=True,
        samesite="lax",
    )


def _redirect(location: str, cookies: list[Cookie] | None = None) -> Response[bytes]:
    return Response(
        b"",
        status_code=302,
        headers={"Location": location, **REDIRECT_HEADERS},
        cookies=cookies or [],
    )


def _failure(
    request: Request[Any, Any, Any], exc: AuthError, retry_url: str | None
) -> Response[Any]:
    rid = request_id(request.scope)
    if accepts_html(request):
        page = error_page(exc.status, exc.reason, rid, retry_url=retry_url)
        page.headers.update(exc.headers)  # Retry-After of a 429 or 503
        return page
    return Response(
        problem_body(exc.status, exc.detail, rid, reason=exc.reason),
        status_code=exc.status,
        media_type="application/problem+json",
        headers={**exc.headers, "Cache-Control": "no-store"},
    )


async def _limit_login_starts(request: Request[Any, Any, Any], limiter: FixedWindowLimiter) -> None:
    """Each login start stores a state record: at most ``AUTH_LOGIN_RATE_LIMIT`` per address.

    The address is the one login audit events record (`_client`), so switching
    that to the trusted client-address helper switches this limit too.
    """
    retry_after = await limiter.hit(_client(request).ip or "unknown")
    if retry_after is not None:
        raise TooManyAttempts(
            "too many sign-in attempts from this address",
            reason="login_rate_limited",
            headers={"Retry-After": str(retry_after)},
        )


def _store_down(exc: Exception) -> DependencyUnavailable:
    log.warning("session_store_unavailable", error=exc.__class__.__name__, detail=str(exc)[:200])
    return DependencyUnavailable("session store unavailable", reason="session_store_unavailable")


class BrowserLoginController(Controller):
    """The browser login endpoints of CONTRACT §5 (MFA pages live in `auth_service.mfa`)."""

    path = "/auth"

    @get("/login")
    async def start_login(
        self,
        request: Request[Any, Any, Any],
        login: NamedDependency[BrowserLogin],
        login_limiter: NamedDependency[FixedWindowLimiter],
        rd: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """302 to the IdP's authorization endpoint (code flow, PKCE S256, state, nonce)."""
        name = _binding_cookie(login)
        binding = request.cookies.get(name) or ""
        if len(binding) != 43 or not set(binding) <= _BINDING_CHARS:
            binding = secrets.token_urlsafe(32)
        try:
            await _limit_login_starts(request, login_limiter)
            url = await login.start(rd, binding)
        except AuthError as exc:
            return _failure(request, exc, None)
        except (RedisError, OSError) as exc:
            return _failure(request, _store_down(exc), None)
        return _redirect(url, [_cookie(login, name, binding, login.state_ttl)])

    @get("/callback")
    async def callback(
        self,
        request: Request[Any, Any, Any],
        login: NamedDependency[BrowserLogin],
        sessions: NamedDependency[SessionResolver],
        mfa: NamedDependency[MfaService],
        policy: NamedDependency[PolicyHolder],
    ) -> Response[Any]:
        """Complete the login: session cookie and 302 to the return URL."""
        params = {k: v for k, v in request.query_params.items() if isinstance(v, str)}
        binding = request.cookies.get(_binding_cookie(login))
        try:
            result = await login.finish(params, binding, _client(request))
        except (LoginFailed, LoginRejected, DependencyUnavailable) as exc:
            return _failure(request, exc, f"{login.settings.public_url}/auth/login")
        except (RedisError, OSError) as exc:
            return _failure(request, _store_down(exc), f"{login.settings.public_url}/auth/login")
        cookie = _cookie(login, sessions.cookie, result.session_id, None)
        target = await _after_login(login.settings, result, mfa, policy)
        return _redirect(target, [cookie])

    @get("/userinfo")
    async def userinfo(
        self, request: Request[Any, Any, Any], mfa_state: NamedDependency[MfaState]
    ) -> Response[UserInfo]:
        """The caller's identity, from a bearer token or the session cookie."""
        caller = await authenticate_caller(request)
        verified = mfa_state.is_verified(caller.identity.sid)
        return Response(_userinfo(caller.identity, verified), headers={"Cache-Control": "no-store"})

    @get("/logout")
    async def logout(
        self,
        request: Request[Any, Any, Any],
        logout: NamedDependency[Logout],
        sessions: NamedDependency[SessionResolver],
        rd: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """End the session and 302 to the IdP's end-session endpoint."""
        return await _logout(request, logout, sessions, request.cookies.get(sessions.cookie), rd)

    @get("/logout/confirm", media_type=MediaType.HTML)
    async def logout_confirm(
        self,
        request: Request[Any, Any, Any],
        sessions: NamedDependency[SessionResolver],
        csrf: NamedDependency[CsrfTokens],
        rd: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """A sign-out form (POST, CSRF-protected) for pages that link to it."""
        session_id = request.cookies.get(sessions.cookie) or ""
        return logout_page(csrf.issue(session_id), rd)

    @post("/logout", status_code=HTTP_200_OK)
    async def logout_form(
        self,
        request: Request[Any, Any, Any],
        logout: NamedDependency[Logout],
        sessions: NamedDependency[SessionResolver],
        csrf: NamedDependency[CsrfTokens],
    ) -> Response[Any]:
        """The sign-out form's target: checks the CSRF token, then logs out like ``GET``."""
        form = await request.form()
        session_id = request.cookies.get(sessions.cookie)
        token = form.get("csrf_token")
        if not csrf.verify(session_id or "", token if isinstance(token, str) else None):
            denied = AccessDenied("CSRF token missing or invalid", reason="csrf_failed")
            return _failure(request, denied, None)
        rd = form.get("rd")
        return await _logout(
            request, logout, sessions, session_id, rd if isinstance(rd, str) else None
        )

    @post("/backchannel-logout", status_code=HTTP_200_OK)
    async def backchannel_logout(
        self, request: Request[Any, Any, Any], logout: NamedDependency[Logout]
    ) -> Response[bytes]:
        """OIDC Back-Channel Logout: 200 when acted on, 400 for a bad logout token."""
        form = await request.form()
        token = form.get("logout_token")
        if not isinstance(token, str) or not token:
            raise BadRequest("logout_token is required", reason="invalid_logout_token")
        try:
            await logout.backchannel(token, _client(request))
        except (RedisError, OSError) as exc:
            raise _store_down(exc) from None
        return Response(b"", headers={"Cache-Control": "no-store"})


async def _logout(
    request: Request[Any, Any, Any],
    logout: Logout,
    sessions: SessionResolver,
    session_id: str | None,
    rd: str | None,
) -> Response[Any]:
    try:
        url = await logout.logout(session_id, rd, _client(request))
    except AuthError as exc:
        return _failure(request, exc, None)
    except (RedisError, OSError) as exc:
        return _failure(request, _store_down(exc), None)
    expired = _cookie(logout, sessions.cookie, "", 0)
    return _redirect(url, [expired])


def _userinfo(auth: Authenticated, verified: bool) -> UserInfo:
    claims = auth.claims
    return UserInfo(
        sub=auth.subject,
        username=claims.username,
        email=claims.email,
        roles=sorted(auth.realm_roles),
        client_roles={c: sorted(r) for c, r in auth.client_roles.items()},
        attributes=dict(auth.attributes),
        mfa="totp" if verified else "none",
    )


async def _after_login(
    settings: Settings, result: LoginResult, mfa: MfaService, policy: PolicyHolder
) -> str:
    """Where the callback sends the browser (CONTRACT §5).

    The MFA page comes first when the user has TOTP enrolled or the rule for the
    return URL requires it; otherwise straight to ``rd``. If the TOTP store cannot
    be read the browser goes to ``rd``: forward-auth still enforces ``require_mfa``.
    """
    public = settings.public_url
    # Checked when the login started; checked again by the same rule before it is used.
    redirect_to = redirect_target(result.redirect_to, settings.allowed_redirect_hosts, public)
    try:
        needs_mfa = (await mfa.status(result.sub)).enrolled
    except Exception:  # PostgreSQL down: do not block the login on it
        needs_mfa = False
    if not needs_mfa:
        target = urlsplit(urljoin(public + "/", redirect_to))
        path = normalize_path(target.path or "/")
        if path is not None:
            match = policy.current.match("GET", target.hostname or "", path)
            needs_mfa = match is not None and match.rule.require_mfa
    if needs_mfa:
        return f"{public}/auth/mfa?rd={quote(redirect_to, safe='')}"
    return redirect_to
