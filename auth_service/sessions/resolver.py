"""The forward-auth `SessionResolver`: session cookie → `Authenticated`.

Per request: one Redis round trip (read the session, restart its idle timer),
an in-memory revocation check of its ``sid``, AES-GCM decryption of the
tokens, and the Authenticator's verified-token cache (the access token is
verified once, then served from memory like any bearer token). When the
access token has less than ``refresh_margin`` seconds left it is refreshed
first (`auth_service.sessions.refresh`).

Failures map onto the decision engine's vocabulary: a missing, expired,
logged-out or unusable session is `TokenRejected` (browsers go back to login,
API callers get 401); Redis or the IdP being unreachable is
`DependencyUnavailable` (503), never a guess.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable

import structlog
from redis.exceptions import RedisError

from auth_service.audit.sink import AuditSink
from auth_service.crypto import DecryptionError
from auth_service.errors import DependencyUnavailable
from auth_service.sessions.refresh import (
    RefreshRefused,
    RefreshUnavailable,
    SessionGone,
    SessionRefresher,
)
from auth_service.sessions.store import IdPTokens, SessionRecord, SessionStore
from auth_service.tokens.identity import Authenticated
from auth_service.tokens.revocation import Revocations
from auth_service.tokens.service import Authenticator, TokenRejected

__all__ = ("AuditSink", "SessionResolver", "session_cookie_name")

log = structlog.get_logger("auth_service.sessions")

_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")


def session_cookie_name(public_url: str) -> str:
    """``__Host-auth_session`` behind https, ``auth_session`` otherwise (CONTRACT §5)."""
    return "__Host-auth_session" if public_url.startswith("https://") else "auth_session"


def _gone() -> TokenRejected:
    return TokenRejected("session_expired", "session expired or ended")


class SessionResolver:
    """Resolves this service's session cookie for forward-auth and ``/auth/userinfo``."""

    def __init__(
        self,
        store: SessionStore,
        refresher: SessionRefresher,
        authenticator: Authenticator,
        revocations: Revocations,
        *,
        cookie_name: str,
        audit: AuditSink | None = None,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.refresher = refresher
        self.authenticator = authenticator
        self.revocations = revocations
        self.cookie = cookie_name
        self.cookie_name = cookie_name.encode("ascii")
        self.audit = audit
        self.refresh_margin = refresh_margin
        self._clock = clock

    async def resolve(self, session_id: str) -> Authenticated:
        """The identity behind a session cookie value.

        Raises:
            TokenRejected: ``session_invalid`` / ``session_expired``.
            DependencyUnavailable: Redis or the IdP cannot be reached.
        """
        _, tokens = await self.session(session_id)
        try:
            return await self.authenticator.authenticate(tokens.access_token)
        except TokenRejected as exc:
            if exc.reason == "token_revoked":
                # Ending it is cleanup: the session is refused either way, so a Redis
                # failure here must not turn the refusal into a 500.
                with contextlib.suppress(RedisError, OSError):
                    await self._end(session_id, "token_revoked")
            raise TokenRejected("session_invalid", f"session token refused: {exc.reason}") from exc

    async def session(self, session_id: str) -> tuple[SessionRecord, IdPTokens]:
        """The live session and its decrypted tokens, refreshed when needed."""
        if not _SESSION_ID.fullmatch(session_id):
            raise TokenRejected("session_invalid", "session cookie is malformed")
        try:
            record = await self.store.load(session_id)
            if record is None:
                raise _gone()
            if self.revocations.is_revoked(record.sid, None):
                await self._end(session_id, "sid_revoked")
                raise _gone()
            if record.access_exp - self._clock() < self.refresh_margin:
                record = await self._refresh(session_id, record)
            try:
                return record, self.store.open(session_id, record)
            except DecryptionError:
                log.warning("session_undecryptable")
                await self._end(session_id, "undecryptable")
                raise TokenRejected("session_invalid", "session cannot be read") from None
        except (RedisError, OSError) as exc:
            raise DependencyUnavailable(
                "session store unavailable", reason="session_store_unavailable"
            ) from exc

    async def _refresh(self, session_id: str, record: SessionRecord) -> SessionRecord:
        try:
            return await self.refresher.refresh(session_id, record)
        except SessionGone:
            raise _gone() from None
        except RefreshRefused as exc:
            self._emit("refresh.failure", record, exc.reason)
            self._emit("session.revoked", record, "refresh_failed")
            raise TokenRejected(
                "session_expired", "session ended at the identity provider"
            ) from exc
        except RefreshUnavailable as exc:
            self._emit("refresh.failure", record, "idp_unavailable")
            raise DependencyUnavailable(
                "identity provider unavailable for token refresh", reason="idp_unavailable"
            ) from exc
        except DecryptionError:
            await self._end(session_id, "undecryptable")
            raise TokenRejected("session_invalid", "session cannot be read") from None

    async def _end(self, session_id: str, reason: str) -> None:
        record = await self.store.delete(session_id)
        if record is not None:
            self._emit("session.revoked", record, reason)

    def _emit(self, type: str, record: SessionRecord, reason: str) -> None:
        if self.audit is not None:
            self.audit.emit(
                type,
                outcome="failure" if type == "refresh.failure" else "success",
                subject_sub=record.sub,
                reason=reason,
            )
