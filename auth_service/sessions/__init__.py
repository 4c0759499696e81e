"""Browser sessions: Redis store, cross-worker refresh, the forward-auth resolver, CSRF tokens.

`auth_service.services.build_services` builds them (and the OIDC browser flows
that create them) for one worker.
"""

from __future__ import annotations

from auth_service.sessions.csrf import CsrfTokens
from auth_service.sessions.refresh import SessionRefresher
from auth_service.sessions.resolver import SessionResolver, session_cookie_name
from auth_service.sessions.store import SessionStore

__all__ = (
    "CsrfTokens",
    "SessionRefresher",
    "SessionResolver",
    "SessionStore",
    "session_cookie_name",
)
