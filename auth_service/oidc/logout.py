"""Ending sessions (CONTRACT §5): RP-initiated logout and OIDC Back-Channel Logout 1.0.

::

    /auth/logout         logout():       delete the session, revoke its refresh token at
                                         the IdP, 302 to end_session with id_token_hint
    /auth/backchannel-   backchannel():  validate the logout token, remember its jti until
      logout                             it expires, end every session of the sid (or sub),
                                         revoke the sid for bearer tokens
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time

from authlib.common.urls import add_params_to_uri
from redis.asyncio import Redis

from auth_service.audit.sink import AuditSink
from auth_service.config import Settings
from auth_service.errors import BadRequest, DependencyUnavailable
from auth_service.idp import IdPClient, IdPTokenInvalid, NotReady, validate_logout_token
from auth_service.oidc.common import ClientInfo, FlowAudit, return_url
from auth_service.sessions.store import SessionStore
from auth_service.tokens.revocation import Revocations
from auth_service.web import SIGNED_OUT_PATH

__all__ = ("Logout", "LogoutTokenInvalid")


class LogoutTokenInvalid(BadRequest):
    """400: a back-channel logout token that must not be acted on."""

    default_reason = "invalid_logout_token"


class Logout:
    """``/auth/logout`` and ``/auth/backchannel-logout``; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        idp: IdPClient,
        store: SessionStore,
        revocations: Revocations,
        redis: Redis,
        *,
        audit: AuditSink | None = None,
    ) -> None:
        self.settings = settings
        self.idp = idp
        self.store = store
        self.revocations = revocations
        self.redis = redis
        self.audit = FlowAudit(audit, settings.oidc_client_id)
        self.client_id = settings.oidc_client_id

    async def logout(self, session_id: str | None, rd: str | None, client: ClientInfo) -> str:
        """End the session (if any) and return where to send the browser (end_session)."""
        # Without a return URL the browser lands on the "signed out" page.
        target = return_url(self.settings, rd if rd else SIGNED_OUT_PATH)
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
                    await self.idp.revoke_refresh_token(tokens.refresh_token)
            if record.sid:
                await self.revocations.revoke("sid", record.sid)
            self.audit.emit("session.revoked", "success", client, subject_sub=sub, reason="logout")
        self.audit.emit("logout", "success", client, actor_sub=sub, subject_sub=sub)
        metadata = self.idp.provider.metadata
        endpoint = metadata.end_session_endpoint if metadata is not None else None
        if endpoint is None:
            return target
        params = [("post_logout_redirect_uri", target), ("client_id", self.client_id)]
        if id_token:
            params.insert(0, ("id_token_hint", id_token))
        url: str = add_params_to_uri(endpoint, params)
        return url

    async def backchannel(self, logout_token: str, client: ClientInfo) -> int:
        """OIDC Back-Channel Logout 1.0; returns how many sessions ended.

        Raises:
            LogoutTokenInvalid: the token must not be acted on (400).
            DependencyUnavailable: keys or Redis unavailable (the IdP will log a failure).
        """
        leeway = self.settings.oidc_leeway
        try:
            claims = await validate_logout_token(
                self.idp.provider.logout_tokens, logout_token, leeway=leeway
            )
            digest = hashlib.sha256(claims.jti.encode()).hexdigest()
            jti_key = f"{self.settings.redis_prefix}logout-jti:{digest}"
            first = await self.redis.set(
                jti_key,
                "1",
                nx=True,
                # Remembered as long as the token could be accepted: until exp plus leeway.
                ex=max(1, math.ceil(claims.exp - time.time()) + leeway),
            )
            if not first:
                raise IdPTokenInvalid("replayed")
        except NotReady:
            raise DependencyUnavailable(
                "identity provider keys unavailable", reason="idp_unavailable"
            ) from None
        except IdPTokenInvalid as exc:
            self.audit.emit("logout.backchannel", "failure", client, reason=exc.reason)
            raise LogoutTokenInvalid(
                f"logout token refused ({exc.reason})", reason=exc.reason
            ) from None
        sid, sub = claims.sid, claims.sub
        try:
            records = await (
                self.store.delete_by_sid(sid) if sid else self.store.delete_by_sub(sub or "")
            )
            sids = {sid} if sid else {r.sid for r in records if r.sid}
            for revoked in sorted(s for s in sids if s):
                await self.revocations.revoke("sid", revoked)
        except BaseException:
            # Not acted on: forget the jti, so the IdP's retry of this token is not "replayed".
            with contextlib.suppress(Exception):
                await self.redis.delete(jti_key)
            raise
        for record in records:
            self.audit.emit(
                "session.revoked", "success", client, subject_sub=record.sub, reason="backchannel"
            )
        self.audit.emit("logout.backchannel", "success", client, subject_sub=sub)
        return len(records)
