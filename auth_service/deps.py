"""Typed Litestar dependencies: one ``provide_*`` per capability service.

Each reads the worker's `Services` (built by `auth_service.services.build_services`
in the lifespan) and hands one typed piece to a handler. `DEPENDENCIES` is
registered once on the app (`auth_service.app`), so a handler anywhere takes
``login: NamedDependency[BrowserLogin]`` without importing this module: the
capability packages stay below the composition root. Guards and helpers that
only hold a connection use `auth_service.resources.services_of`.
"""

from __future__ import annotations

from typing import Final

from litestar.datastructures import State
from litestar.di import Provide

from auth_service.audit import AuditLog
from auth_service.health.readiness import IdpProbe
from auth_service.idp import OIDCProvider
from auth_service.mfa.service import MfaService
from auth_service.mfa.state import MfaState
from auth_service.oidc.login import BrowserLogin
from auth_service.oidc.logout import Logout
from auth_service.policy import PolicyHolder
from auth_service.services import Services
from auth_service.sessions import CsrfTokens, SessionResolver
from auth_service.stores.rate_limit import FixedWindowLimiter
from auth_service.tokens.assertion import AssertionSigner
from auth_service.tokens.revocation import Revocations
from auth_service.tokens.service import Authenticator

__all__ = (
    "DEPENDENCIES",
    "provide_assertions",
    "provide_audit",
    "provide_authenticator",
    "provide_csrf",
    "provide_idp",
    "provide_idp_probe",
    "provide_login",
    "provide_login_limiter",
    "provide_logout",
    "provide_mfa",
    "provide_mfa_state",
    "provide_policy",
    "provide_revocations",
    "provide_services",
    "provide_sessions",
)


def provide_services(state: State) -> Services:
    """The worker's `Services`."""
    services: Services = state.services
    return services


def provide_authenticator(state: State) -> Authenticator:
    """Verifies bearer tokens."""
    return provide_services(state).authenticator


def provide_sessions(state: State) -> SessionResolver:
    """Resolves this service's session cookie."""
    return provide_services(state).sessions


def provide_login(state: State) -> BrowserLogin:
    """The browser login flows."""
    return provide_services(state).login


def provide_logout(state: State) -> Logout:
    """RP-initiated and back-channel logout."""
    return provide_services(state).logout


def provide_csrf(state: State) -> CsrfTokens:
    """CSRF tokens of the HTML forms."""
    return provide_services(state).csrf


def provide_mfa(state: State) -> MfaService:
    """The TOTP second factor."""
    return provide_services(state).mfa


def provide_mfa_state(state: State) -> MfaState:
    """MFA-verified sids (in memory)."""
    return provide_services(state).mfa_state


def provide_audit(state: State) -> AuditLog:
    """The audit log."""
    return provide_services(state).audit


def provide_revocations(state: State) -> Revocations:
    """Revoked sids and token ids."""
    return provide_services(state).revocations


def provide_assertions(state: State) -> AssertionSigner:
    """The ``X-Auth-Assertion`` signer and its JWKS."""
    return provide_services(state).assertions


def provide_idp(state: State) -> OIDCProvider:
    """The realm's discovery, keys and token verifiers."""
    return provide_services(state).idp


def provide_idp_probe(state: State) -> IdpProbe:
    """Whether the realm answers (readiness)."""
    return provide_services(state).idp_probe


def provide_login_limiter(state: State) -> FixedWindowLimiter:
    """Login starts per client address."""
    return provide_services(state).login_limiter


def provide_policy(state: State) -> PolicyHolder:
    """The current access policy."""
    return provide_services(state).policy


DEPENDENCIES: Final[dict[str, Provide]] = {
    name: Provide(function, sync_to_thread=False)
    for name, function in {
        "assertions": provide_assertions,
        "audit": provide_audit,
        "authenticator": provide_authenticator,
        "csrf": provide_csrf,
        "login": provide_login,
        "login_limiter": provide_login_limiter,
        "logout": provide_logout,
        "mfa": provide_mfa,
        "idp": provide_idp,
        "idp_probe": provide_idp_probe,
        "mfa_state": provide_mfa_state,
        "policy": provide_policy,
        "revocations": provide_revocations,
        "services": provide_services,
        "sessions": provide_sessions,
    }.items()
}
"""The app-level dependencies, by parameter name."""
