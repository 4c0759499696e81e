"""Litestar guards for this service's own API: a bearer token with a realm role.

The authenticator is the worker's `Authenticator` (`auth_service.services.Services`);
the verified identity is stored in ``scope["state"]["identity"]`` for the handler.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from auth_service.errors import AccessDenied
from auth_service.resources import services_of
from auth_service.tokens.identity import Authenticated

__all__ = ("identity_of", "requires_realm_role")


def requires_realm_role(role: str) -> Any:
    """Guard: a valid bearer token whose realm roles include ``role``."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        authenticator = services_of(connection).authenticator
        identity = await authenticator.authenticate_bearer(connection.headers.get("authorization"))
        if role not in identity.realm_roles:
            raise AccessDenied(f"realm role {role!r} required", reason="missing_role")
        connection.scope.setdefault("state", {})["identity"] = identity

    return guard


def identity_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Authenticated:
    """The identity a `requires_realm_role` guard verified."""
    identity: Authenticated = connection.scope["state"]["identity"]
    return identity
