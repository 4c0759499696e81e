"""Browser login as an OIDC relying party (CONTRACT §5): authorization code flow + PKCE.

::

    /auth/login?rd=   start():   state, nonce, PKCE verifier, rd → Redis (single use, short TTL)
                                 302 to the authorization endpoint (S256 challenge)
    /auth/callback    finish():  take the state (GETDEL) and check it belongs to this browser,
                                 exchange the code with the verifier, validate the ID token,
                                 verify the access token, create the session

authlib builds the authorization URL and makes the PKCE verifier/challenge and
random values; the token endpoint is `auth_service.idp.IdPClient`; the ID token
is checked by `auth_service.idp.validate_id_token` (the verifier's JWS checks).

A login state is tied to the browser that started it: ``/auth/login`` sets a
random *binding* cookie and the state record stores its SHA-256, so a state
(or a code) carried to another browser is refused (login CSRF).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from redis.asyncio import Redis

from auth_service.audit.sink import AuditSink
from auth_service.config import Settings
from auth_service.errors import AuthError, BadRequest, DependencyUnavailable
from auth_service.idp import (
    GrantRefused,
    IdPClient,
    IdPTokenInvalid,
    IdPUnavailable,
    NotReady,
    validate_id_token,
)
from auth_service.oidc.common import ClientInfo, FlowAudit, return_url
from auth_service.sessions.store import IdPTokens, SessionStore
from auth_service.tokens.service import Authenticator, TokenRejected

__all__ = (
    "BrowserLogin",
    "CodeExchangeUnavailable",
    "LoginFailed",
    "LoginRejected",
    "LoginResult",
    "LoginState",
    "binding_hash",
)


class LoginFailed(BadRequest):
    """400: the callback cannot complete (state, IdP error, code refused)."""

    title = "Login failed"
    default_reason = "login_failed"


class LoginRejected(AuthError):
    """401: the IdP's answer is not trustworthy (invalid ID or access token)."""

    status = 401
    title = "Login failed"
    default_reason = "invalid_id_token"


class CodeExchangeUnavailable(DependencyUnavailable):
    """503: the IdP could not be reached to exchange the code (a retry may work)."""

    default_reason = "idp_unavailable"


class LoginState(msgspec.Struct, frozen=True, kw_only=True):
    """What ``/auth/login`` remembers for ``/auth/callback`` (Redis, single use)."""

    nonce: str
    verifier: str
    """PKCE code verifier (RFC 7636)."""
    rd: str
    binding: str
    """SHA-256 (hex) of the browser's binding cookie."""
    created: float


@dataclass(slots=True, frozen=True)
class LoginResult:
    """A completed login."""

    session_id: str
    redirect_to: str
    sub: str


def binding_hash(binding: str) -> str:
    """SHA-256 (hex) of a binding cookie value."""
    return hashlib.sha256(binding.encode("ascii", "replace")).hexdigest()


class BrowserLogin:
    """``/auth/login`` and ``/auth/callback``; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        idp: IdPClient,
        authenticator: Authenticator,
        store: SessionStore,
        redis: Redis,
        *,
        audit: AuditSink | None = None,
        state_ttl: int = 600,
        scopes: str = "openid profile email",
    ) -> None:
        self.settings = settings
        self.idp = idp
        self.authenticator = authenticator
        self.store = store
        self.redis = redis
        self.audit = FlowAudit(audit, settings.oidc_client_id)
        self.state_ttl = state_ttl
        self.scopes = scopes
        self.client_id = settings.oidc_client_id
        self.redirect_uri = f"{settings.public_url}/auth/callback"
        self._states = msgspec.msgpack.Decoder(LoginState)
        self._encode = msgspec.msgpack.Encoder().encode

    async def start(self, rd: str | None, binding: str) -> str:
        """Remember a new login attempt and return the authorization URL to redirect to."""
        target = return_url(self.settings, rd)
        try:
            endpoint = self.idp.metadata().authorization_endpoint
        except IdPUnavailable:
            endpoint = None
        if endpoint is None:
            raise DependencyUnavailable(
                "identity provider is not discovered yet", reason="idp_unavailable"
            )
        state, nonce, verifier = generate_token(43), generate_token(43), generate_token(64)
        record = LoginState(
            nonce=nonce,
            verifier=verifier,
            rd=target,
            binding=binding_hash(binding),
            created=time.time(),
        )
        await self.redis.set(self._state_key(state), self._encode(record), ex=self.state_ttl)
        url: str = prepare_grant_uri(
            endpoint,
            self.client_id,
            "code",
            redirect_uri=self.redirect_uri,
            scope=self.scopes,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        return url

    def _state_key(self, state: str) -> str:
        digest = hashlib.sha256(state.encode()).hexdigest()
        return f"{self.settings.redis_prefix}login-state:{digest}"

    async def take_state(self, state: str) -> LoginState | None:
        """Consume a login state (single use)."""
        raw = await self.redis.getdel(self._state_key(state))
        if raw is None:
            return None
        try:
            return self._states.decode(raw if isinstance(raw, bytes) else raw.encode())
        except msgspec.DecodeError:
            return None

    async def finish(
        self, params: Mapping[str, str], binding: str | None, client: ClientInfo
    ) -> LoginResult:
        """Complete the callback.

        Raises:
            LoginFailed: 400 (state, IdP error, code refused).
            LoginRejected: 401 (ID or access token not trustworthy).
            DependencyUnavailable: 503 (IdP or its keys unavailable).
        """
        try:
            return await self._finish(params, binding, client)
        except (LoginFailed, LoginRejected, DependencyUnavailable) as exc:
            self.audit.emit("login.failure", "failure", client, reason=exc.reason)
            raise

    async def _finish(
        self, params: Mapping[str, str], binding: str | None, client: ClientInfo
    ) -> LoginResult:
        state = params.get("state") or ""
        login = await self.take_state(state) if 0 < len(state) <= 512 else None
        if params.get("error"):
            error = "".join(c for c in params["error"][:64] if c.isalnum() or c == "_")
            raise LoginFailed(
                f"the identity provider refused the login ({error})", reason="idp_error"
            )
        if login is None:
            raise LoginFailed("unknown, used or expired login state", reason="state_mismatch")
        if binding is None or not hmac.compare_digest(binding_hash(binding), login.binding):
            raise LoginFailed("login state belongs to another browser", reason="state_mismatch")
        issuer = params.get("iss")
        if issuer is not None and issuer != self.settings.oidc_issuer:
            raise LoginFailed("authorization response from another issuer", reason="idp_error")
        code = params.get("code")
        if not code or len(code) > 4096:
            raise LoginFailed("authorization code missing", reason="missing_code")
        try:
            body = await self.idp.token_request(
                "authorization_code",
                code=code,
                redirect_uri=self.redirect_uri,
                code_verifier=login.verifier,
            )
        except GrantRefused as exc:
            raise LoginFailed(
                f"the identity provider refused the code ({exc.error})",
                reason="code_exchange_failed",
            ) from None
        except IdPUnavailable as exc:
            raise CodeExchangeUnavailable("identity provider unavailable") from exc
        access, id_token = body.get("access_token"), body.get("id_token")
        if not isinstance(access, str) or not isinstance(id_token, str):
            raise LoginRejected("token response lacks tokens", reason="invalid_token_response")
        try:
            claims = await validate_id_token(
                self.idp.provider.id_tokens,
                id_token,
                client_id=self.client_id,
                nonce=login.nonce,
                access_token=access,
            )
        except NotReady:
            raise DependencyUnavailable(
                "identity provider keys unavailable", reason="idp_unavailable"
            ) from None
        except IdPTokenInvalid as exc:
            raise LoginRejected(
                f"ID token refused ({exc.reason})", reason="invalid_id_token"
            ) from None
        try:
            auth = await self.authenticator.authenticate(access)
        except TokenRejected as exc:
            raise LoginRejected(
                f"access token refused ({exc.reason})", reason="invalid_access_token"
            ) from None
        sub = str(claims["sub"])
        if auth.subject != sub:
            raise LoginRejected("ID and access token disagree", reason="invalid_access_token")
        refresh = body.get("refresh_token")
        sid = claims.get("sid") or auth.sid
        session_id, _ = await self.store.create(
            sub=sub,
            sid=str(sid) if sid else None,
            tokens=IdPTokens(
                access_token=access,
                refresh_token=refresh if isinstance(refresh, str) else None,
                id_token=id_token,
            ),
            access_exp=auth.exp,
        )
        self.audit.emit("login.success", "success", client, actor_sub=sub, subject_sub=sub)
        return LoginResult(session_id=session_id, redirect_to=login.rd, sub=sub)
