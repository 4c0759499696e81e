"""Browser sessions: Redis store, cross-worker refresh, the forward-auth resolver, CSRF tokens.

`start_sessions` builds them (and the OIDC browser flows that create them)
for one worker; see `auth_service.wiring`.
"""

from __future__ import annotations

import contextlib

from litestar import Litestar

from auth_service.crypto import SecretBox
from auth_service.resources import Resources
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
    "start_sessions",
)


async def start_sessions(
    app: Litestar, res: Resources, stack: contextlib.AsyncExitStack
) -> SessionResolver:
    """Build the session store, refresher, resolver and browser login flows of a worker.

    Needs ``res.components`` ``audit``, ``oidc``, ``authenticator`` and ``revocations``
    (started before it). Registers ``sessions`` (the resolver), ``session_store``,
    ``browser_login`` and ``csrf``; returns the resolver for `ForwardAuthEndpoint`.
    """
    from auth_service.oidc.flows import BrowserLogin  # oidc.flows imports this package

    del app, stack  # nothing to start or stop: every piece is request-driven
    settings = res.settings
    audit = res.components.get("audit")
    store = SessionStore(
        res.redis,
        SecretBox(settings.secret_keys),
        prefix=settings.redis_prefix,
        idle_timeout=res.settings.session_idle_timeout,
        absolute_timeout=res.settings.session_absolute_timeout,
    )
    login = BrowserLogin(
        settings,
        res.components["oidc"],
        res.components["authenticator"],
        store,
        res.components["revocations"],
        res.redis,
        audit=audit,
        state_ttl=res.settings.login_state_ttl,
        scopes=res.settings.oidc_scopes,
    )
    refresher = SessionRefresher(store, login.refresh, call_timeout=settings.idp_timeout)
    resolver = SessionResolver(
        store,
        refresher,
        res.components["authenticator"],
        res.components["revocations"],
        cookie_name=session_cookie_name(settings.public_url),
        audit=audit,
        refresh_margin=res.settings.session_refresh_margin,
    )
    res.components["session_store"] = store
    res.components["sessions"] = resolver
    res.components["browser_login"] = login
    res.components["csrf"] = CsrfTokens(settings.secret_keys)
    return resolver
