"""Browser login as an OIDC relying party (CONTRACT §5): code flow + PKCE, logouts.

::

    /auth/login?rd=     start():     state, nonce, PKCE verifier, rd → Redis (single use, short TTL)
                                     302 to the authorization endpoint (S256 challenge)
    /auth/callback      finish():    take the state (GETDEL) and check it belongs to this browser,
                                     exchange the code with the verifier, validate the ID token,
                                     verify the access token, create the session
    /auth/logout        logout():    delete the session, revoke its refresh token at the IdP,
                                     302 to end_session with id_token_hint
    /auth/backchannel-  backchannel(): validate the logout token, single-use jti, end every
      logout                          session of the sid (or sub), revoke the sid for bearers

The protocol pieces come from libraries: authlib builds the authorization URL
and token requests and makes the PKCE verifier/challenge and random values;
joserfc verifies JWS signatures and registered claims. Keys come from the
provider's JWKS cache, the same one that verifies access tokens.

A login state is tied to the browser that started it: ``/auth/login`` sets a
random *binding* cookie and the state record stores its SHA-256, so a state
(or a code) carried to another browser is refused (login CSRF).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import structlog
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core.util import create_half_hash
from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwt import JWTClaimsRegistry
from redis.asyncio import Redis

from auth_service.config import Settings
from auth_service.errors import AuthError, BadRequest, DependencyUnavailable
from auth_service.oidc.provider import OIDCProvider, idp_headers
from auth_service.oidc.redirects import redirect_target
from auth_service.sessions.refresh import RefreshRefused, RefreshUnavailable
from auth_service.sessions.resolver import AuditSink
from auth_service.sessions.store import IdPTokens, SessionStore
from auth_service.tokens.revocation import Revocations
from auth_service.tokens.service import Authenticator, TokenRejected

__all__ = (
    "BACKCHANNEL_EVENT",
    "BrowserLogin",
    "ClientInfo",
    "LoginFailed",
    "LoginRejected",
    "LoginResult",
    "LoginState",
    "LogoutTokenInvalid",
)

log = structlog.get_logger("auth_service.oidc")

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
_FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c", "crit")
_LOGOUT_TYPS = frozenset({"logout+jwt", "application/logout+jwt", "jwt"})
_CLAIM_REASONS = {
    "iss": "wrong_issuer",
    "aud": "wrong_audience",
    "nonce": "nonce_mismatch",
    "sub": "missing_sub",
    "exp": "missing_exp",
    "iat": "bad_iat",
    "jti": "missing_jti",
    "nbf": "token_not_yet_valid",
}


class LoginFailed(BadRequest):
    """400: the callback cannot complete (state, IdP error, code exchange)."""

    title = "Login failed"
    default_reason = "login_failed"


class LoginRejected(AuthError):
    """401: the IdP's answer is not trustworthy (invalid ID or access token)."""

    status = 401
    title = "Login failed"
    default_reason = "invalid_id_token"


class LogoutTokenInvalid(BadRequest):
    """400: a back-channel logout token that must not be acted on."""

    default_reason = "invalid_logout_token"


class _TokenInvalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
class ClientInfo:
    """Who is calling, for audit events."""

    ip: str | None = None
    user_agent: str | None = None


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
    """The browser-facing OIDC flows; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        provider: OIDCProvider,
        authenticator: Authenticator,
        store: SessionStore,
        revocations: Revocations,
        redis: Redis,
        *,
        audit: AuditSink | None = None,
        state_ttl: int = 600,
        scopes: str = "openid profile email",
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.authenticator = authenticator
        self.store = store
        self.revocations = revocations
        self.redis = redis
        self.audit = audit
        self.state_ttl = state_ttl
        self.scopes = scopes
        self.client_id = settings.oidc_client_id
        self.redirect_uri = f"{settings.public_url}/auth/callback"
        self._states = msgspec.msgpack.Decoder(LoginState)
        self._encode = msgspec.msgpack.Encoder().encode

    # -- helpers ---------------------------------------------------------------------------

    def _metadata(self) -> Any:
        metadata = self.provider.metadata
        if metadata is None or self.provider.jwks is None:
            raise DependencyUnavailable(
                "identity provider is not discovered yet", reason="idp_unavailable"
            )
        return metadata

    def safe_target(self, rd: str | None) -> str:
        """``rd`` as an absolute URL if it is allowed (default: the public URL), else 400."""
        return redirect_target(rd, self.settings.allowed_redirect_hosts, self.settings.public_url)

    def _emit(self, type: str, outcome: str, client: ClientInfo, **fields: Any) -> None:
        if self.audit is not None:
            self.audit.emit(
                type,
                outcome=outcome,
                client_id=self.client_id,
                source_ip=client.ip,
                user_agent=client.user_agent,
                **fields,
            )

    async def _token_request(self, grant_type: str, **params: str) -> dict[str, Any]:
        """POST to the token endpoint; `_GrantError` on OAuth errors, else `RefreshUnavailable`."""
        endpoint = self._metadata().token_endpoint
        if endpoint is None:
            raise RefreshUnavailable("no token endpoint")
        body = prepare_token_request(grant_type, **params)
        try:
            response = await self.provider.http.post(
                endpoint,
                content=body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                    **idp_headers(),
                },
                auth=(self.client_id, self.settings.oidc_client_secret),
                timeout=self.settings.idp_timeout,
            )
        except httpx.HTTPError as exc:
            raise RefreshUnavailable(exc.__class__.__name__) from exc
        try:
            payload = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            payload = None
        if response.status_code >= 500 or not isinstance(payload, dict):
            raise RefreshUnavailable(f"token endpoint answered {response.status_code}")
        if response.status_code != 200:
            error = payload.get("error")
            raise _GrantError(error if isinstance(error, str) else "invalid_response")
        return payload

    # -- login -----------------------------------------------------------------------------

    async def start(self, rd: str | None, binding: str) -> str:
        """Remember a new login attempt and return the authorization URL to redirect to."""
        target = self.safe_target(rd)
        endpoint = self._metadata().authorization_endpoint
        if endpoint is None:
            raise DependencyUnavailable("no authorization endpoint", reason="idp_unavailable")
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
        return (
            f"{self.settings.redis_prefix}login-state:{hashlib.sha256(state.encode()).hexdigest()}"
        )

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
        """Complete the callback; raises `LoginFailed` (400) or `LoginRejected` (401)."""
        try:
            return await self._finish(params, binding, client)
        except (LoginFailed, LoginRejected, DependencyUnavailable) as exc:
            self._emit("login.failure", "failure", client, reason=exc.reason)
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
        if binding is None or binding_hash(binding) != login.binding:
            raise LoginFailed("login state belongs to another browser", reason="state_mismatch")
        issuer = params.get("iss")
        if issuer is not None and issuer != self.settings.oidc_issuer:
            raise LoginFailed("authorization response from another issuer", reason="idp_error")
        code = params.get("code")
        if not code or len(code) > 4096:
            raise LoginFailed("authorization code missing", reason="missing_code")
        try:
            body = await self._token_request(
                "authorization_code",
                code=code,
                redirect_uri=self.redirect_uri,
                code_verifier=login.verifier,
            )
        except _GrantError as exc:
            raise LoginFailed(
                f"the identity provider refused the code ({exc.error})",
                reason="code_exchange_failed",
            ) from None
        except RefreshUnavailable as exc:
            raise DependencyUnavailable(
                "identity provider unavailable", reason="idp_unavailable"
            ) from exc
        access, id_token = body.get("access_token"), body.get("id_token")
        if not isinstance(access, str) or not isinstance(id_token, str):
            raise LoginRejected("token response lacks tokens", reason="invalid_token_response")
        try:
            claims = await self.validate_id_token(id_token, nonce=login.nonce, access_token=access)
        except _TokenInvalid as exc:
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
        sid = claims.get("sid") or auth.claims.sid
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
        self._emit("login.success", "success", client, actor_sub=sub, subject_sub=sub)
        return LoginResult(session_id=session_id, redirect_to=login.rd, sub=sub)

    # -- token validation ------------------------------------------------------------------

    async def _verify_jws(self, token: str, *, typs: frozenset[str] | None) -> dict[str, Any]:
        """Signature and header checks with joserfc; returns the claims."""
        if not isinstance(token, str) or len(token) > 16 * 1024:
            raise _TokenInvalid("malformed")
        try:
            header = jws.extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeError):
            raise _TokenInvalid("malformed") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self.settings.oidc_algorithms:
            raise _TokenInvalid("unsupported_alg")
        if any(name in header for name in _FORBIDDEN_HEADERS):
            raise _TokenInvalid("forbidden_header")
        if typs is not None:
            typ = header.get("typ")
            if not isinstance(typ, str) or typ.lower() not in typs:
                raise _TokenInvalid("wrong_token_type")
        if not isinstance(kid, str) or not kid:
            raise _TokenInvalid("malformed")
        jwks = self.provider.jwks
        if jwks is None:
            raise DependencyUnavailable(
                "identity provider keys unavailable", reason="idp_unavailable"
            )
        key = await jwks.get_or_refresh(kid)
        if key is None:
            raise _TokenInvalid("unknown_kid")
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
        except BadSignatureError:
            raise _TokenInvalid("bad_signature") from None
        except (JoseError, ValueError, TypeError):
            raise _TokenInvalid("malformed") from None
        return dict(decoded.claims)

    def _check_claims(self, claims: dict[str, Any], **options: Any) -> None:
        registry = JWTClaimsRegistry(
            leeway=self.settings.oidc_leeway,
            iss={"essential": True, "value": self.settings.oidc_issuer},
            aud={"essential": True, "value": self.client_id},
            iat={"essential": True},
            **options,
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise _TokenInvalid("token_expired") from None
        except (InvalidClaimError, MissingClaimError) as exc:
            raise _TokenInvalid(_CLAIM_REASONS.get(exc.claim, f"bad_{exc.claim}")) from None
        except (JoseError, ValueError, TypeError):
            raise _TokenInvalid("bad_claims") from None
        now = time.time()
        if (
            not isinstance(claims["iat"], int | float)
            or claims["iat"] > now + self.settings.oidc_leeway
        ):
            raise _TokenInvalid("bad_iat")
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.client_id:
            raise _TokenInvalid("wrong_audience")

    async def validate_id_token(
        self, id_token: str, *, nonce: str, access_token: str | None
    ) -> dict[str, Any]:
        """ID token checks of OIDC Core §3.1.3.7: signature, alg, iss, aud/azp, exp, iat, nonce,
        ``typ`` ``ID`` when present, ``at_hash`` when present."""
        claims = await self._verify_jws(id_token, typs=None)
        self._check_claims(
            claims,
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        if "typ" in claims and claims["typ"] != "ID":
            raise _TokenInvalid("wrong_token_type")
        at_hash = claims.get("at_hash")
        if at_hash is not None and access_token is not None:
            alg = jws.extract_compact(id_token.encode("ascii")).headers()["alg"]
            expected = create_half_hash(access_token, alg)
            if not isinstance(at_hash, str) or expected is None or expected.decode() != at_hash:
                raise _TokenInvalid("at_hash_mismatch")
        return claims

    # -- refresh ---------------------------------------------------------------------------

    async def refresh(self, refresh_token: str) -> tuple[IdPTokens, float]:
        """`auth_service.sessions.refresh.TokenRefresh` against the token endpoint."""
        try:
            body = await self._token_request("refresh_token", refresh_token=refresh_token)
        except _GrantError as exc:
            raise RefreshRefused(exc.error) from None
        access = body.get("access_token")
        if not isinstance(access, str):
            raise RefreshUnavailable("token response without access token")
        try:
            auth = await self.authenticator.authenticate(access)
        except TokenRejected as exc:
            if exc.reason in ("unknown_kid", "token_not_yet_valid", "iat_in_future"):
                raise RefreshUnavailable(exc.reason) from None  # may pass once keys/clocks agree
            raise RefreshRefused(f"refreshed_token_{exc.reason}") from None
        refresh, id_token = body.get("refresh_token"), body.get("id_token")
        return (
            IdPTokens(
                access_token=access,
                refresh_token=refresh if isinstance(refresh, str) else refresh_token,
                id_token=id_token if isinstance(id_token, str) else None,
            ),
            auth.exp,
        )

    # -- logout ----------------------------------------------------------------------------

    async def logout(self, session_id: str | None, rd: str | None, client: ClientInfo) -> str:
        """End the session (if any) and return where to send the browser (end_session)."""
        target = self.safe_target(rd)
        id_token: str | None = None
        sub: str | None = None
        record = await self.store.delete(session_id) if session_id else None
        if record is not None:
            sub = record.sub
            try:
                tokens = self.store.open(session_id or "", record)
            except Exception:  # an unreadable session is still ended
                tokens = None
            if tokens is not None:
                id_token = tokens.id_token
                if tokens.refresh_token:
                    await self._revoke_at_idp(tokens.refresh_token)
            if record.sid:
                await self.revocations.revoke("sid", record.sid)
            self._emit("session.revoked", "success", client, subject_sub=sub, reason="logout")
        self._emit("logout", "success", client, actor_sub=sub, subject_sub=sub)
        metadata = self.provider.metadata
        endpoint = metadata.end_session_endpoint if metadata is not None else None
        if endpoint is None:
            return target
        params = [("post_logout_redirect_uri", target), ("client_id", self.client_id)]
        if id_token:
            params.insert(0, ("id_token_hint", id_token))
        url: str = add_params_to_uri(endpoint, params)
        return url

    async def _revoke_at_idp(self, refresh_token: str) -> None:
        metadata = self.provider.metadata
        if metadata is None or metadata.revocation_endpoint is None:
            return
        try:
            response = await self.provider.http.post(
                metadata.revocation_endpoint,
                data={"token": refresh_token, "token_type_hint": "refresh_token"},
                auth=(self.client_id, self.settings.oidc_client_secret),
                headers=idp_headers(),
                timeout=self.settings.idp_timeout,
            )
            if response.status_code != 200:
                log.warning("idp_revocation_failed", status=response.status_code)
        except httpx.HTTPError as exc:
            log.warning("idp_revocation_failed", error=exc.__class__.__name__)

    # -- back-channel logout ---------------------------------------------------------------

    async def backchannel(self, logout_token: str, client: ClientInfo) -> int:
        """OIDC Back-Channel Logout 1.0; returns how many sessions ended.

        Raises:
            LogoutTokenInvalid: the token must not be acted on (400).
            DependencyUnavailable: keys or Redis unavailable (the IdP will log a failure).
        """
        try:
            claims = await self._verify_jws(logout_token, typs=_LOGOUT_TYPS)
            self._check_claims(claims, jti={"essential": True})
            if claims.get("typ", "Logout") != "Logout":
                raise _TokenInvalid("wrong_token_type")
            events = claims.get("events")
            if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
                raise _TokenInvalid("missing_event")
            if "nonce" in claims:
                raise _TokenInvalid("nonce_present")
            sid, sub = claims.get("sid"), claims.get("sub")
            if (
                not isinstance(sid, str | None)
                or not isinstance(sub, str | None)
                or not (sid or sub)
            ):
                raise _TokenInvalid("missing_sid_and_sub")
            jti = claims["jti"]
            if not isinstance(jti, str) or not jti or len(jti) > 256:
                raise _TokenInvalid("missing_jti")
            exp = claims.get("exp")
            ttl = int(exp - time.time()) if isinstance(exp, int | float) else 600
            first = await self.redis.set(
                f"{self.settings.redis_prefix}logout-jti:{hashlib.sha256(jti.encode()).hexdigest()}",
                "1",
                nx=True,
                ex=max(60, ttl + self.settings.oidc_leeway),
            )
            if not first:
                raise _TokenInvalid("replayed")
        except _TokenInvalid as exc:
            self._emit("logout.backchannel", "failure", client, reason=exc.reason)
            raise LogoutTokenInvalid(
                f"logout token refused ({exc.reason})", reason=exc.reason
            ) from None
        records = await (
            self.store.delete_by_sid(sid) if sid else self.store.delete_by_sub(sub or "")
        )
        sids = {sid} if sid else {r.sid for r in records if r.sid}
        for revoked in sorted(s for s in sids if s):
            await self.revocations.revoke("sid", revoked)
        for record in records:
            self._emit(
                "session.revoked", "success", client, subject_sub=record.sub, reason="backchannel"
            )
        self._emit("logout.backchannel", "success", client, subject_sub=sub)
        return len(records)


class _GrantError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error
