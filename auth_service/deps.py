"""Typed Litestar dependencies: one ``provide_*`` per capability service.

Each reads the worker's `Services` (built by `auth_service.services.build_services`
in the lifespan) and hands one typed piece to a handler. Controllers declare the
ones they use in their ``dependencies`` mapping and take them as
``NamedDependency[T]`` parameters; helpers that only hold a connection use
`services_of`.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide

from auth_service.audit import AuditLog
from auth_service.mfa.service import MfaService
from auth_service.mfa.state import MfaState
from auth_service.oidc.flows import BrowserLogin
from auth_service.policy import PolicyHolder
from auth_service.services import Services
from auth_service.sessions import CsrfTokens, SessionResolver
from auth_service.tokens.assertion import AssertionSigner
from auth_service.tokens.revocation import Revocations
from auth_service.tokens.service import Authenticator

__all__ = (
    "provide",
    "provide_assertions",
    "provide_audit",
    "provide_authenticator",
    "provide_csrf",
    "provide_login",
    "provide_mfa",
    "provide_mfa_state",
    "provide_policy",
    "provide_revocations",
    "provide_services",
    "provide_sessions",
    "services_of",
)


def provide_services(state: State) -> Services:
    """The worker's `Services`."""
    services: Services = state.services
    return services


def services_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Services:
    """The worker's `Services`, for guards and helpers that hold a connection."""
    return provide_services(connection.app.state)


def provide_authenticator(state: State) -> Authenticator:
    """Verifies bearer tokens."""
    return provide_services(state).authenticator


def provide_sessions(state: State) -> SessionResolver:
    """Resolves this service's session cookie."""
    return provide_services(state).sessions


def provide_login(state: State) -> BrowserLogin:
    """The browser login flows."""
    return provide_services(state).login


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


def provide_policy(state: State) -> PolicyHolder:
    """The current access policy."""
    return provide_services(state).policy


def provide(*names: str) -> dict[str, Provide]:
    """A controller's ``dependencies`` mapping for the named ``provide_<name>`` functions."""
    table = {
        "assertions": provide_assertions,
        "audit": provide_audit,
        "authenticator": provide_authenticator,
        "csrf": provide_csrf,
        "login": provide_login,
        "mfa": provide_mfa,
        "mfa_state": provide_mfa_state,
        "policy": provide_policy,
        "revocations": provide_revocations,
        "services": provide_services,
        "sessions": provide_sessions,
    }
    return {name: Provide(table[name], sync_to_thread=False) for name in names}
