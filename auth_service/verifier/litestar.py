"""Litestar integration: the verifier middleware as ``DefineMiddleware`` and role/scope guards.

This is the only module of the package that imports Litestar; ``auth_service.verifier``
loads it on first use of one of its names, so non-Litestar users never import it.

The guards read the claims that :class:`~auth_service.verifier.asgi.VerifierMiddleware`
stored. Without claims (middleware missing, or the path excluded) they raise
``NotAuthorizedException`` (401); with claims that lack the role or scope they raise
``PermissionDeniedException`` (403) whose ``extra`` carries the machine-readable
``reason`` (``missing_role`` or ``missing_scope``, as in CONTRACT.md §4).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Literal, cast

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import DefineMiddleware

from .asgi import CLAIMS_STATE_KEY, SupportsVerify, VerifierMiddleware
from .tokens import BaseClaims

__all__ = (
    "claims_of",
    "requires_client_role",
    "requires_realm_role",
    "requires_scope",
    "verifier_middleware",
)

GuardFunc = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def verifier_middleware(
    verifier: SupportsVerify,
    *,
    header: Literal["authorization", "x-auth-assertion"] = "authorization",
    exclude_paths: Collection[str] = (),
    realm: str | None = None,
) -> DefineMiddleware:
    """``VerifierMiddleware`` for ``Litestar(middleware=[...])``; arguments as there."""
    # VerifierMiddleware types scopes as plain mappings, Litestar as TypedDicts.
    return DefineMiddleware(
        cast("Callable[..., Any]", VerifierMiddleware),
        verifier=verifier,
        header=header,
        exclude_paths=tuple(exclude_paths),
        realm=realm,
    )


def claims_of(connection: ASGIConnection[Any, Any, Any, Any]) -> BaseClaims:
    """The verified claims of this request.

    Raises:
        NotAuthorizedException: when the middleware did not verify a token.
    """
    claims = connection.scope.get("state", {}).get(CLAIMS_STATE_KEY)
    if not isinstance(claims, BaseClaims):
        raise NotAuthorizedException(
            "a verified token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    return claims


def _denied(detail: str, reason: str) -> PermissionDeniedException:
    return PermissionDeniedException(detail, extra={"reason": reason})


def requires_realm_role(role: str) -> GuardFunc:
    """Guard: the token must carry realm role ``role``."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if role not in claims_of(connection).realm_roles:
            raise _denied(f"realm role {role!r} required", "missing_role")

    return guard


def requires_client_role(client: str, role: str) -> GuardFunc:
    """Guard: the token must carry role ``role`` of client ``client``."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if not claims_of(connection).has_client_role(client, role):
            raise _denied(f"client role {client}:{role} required", "missing_role")

    return guard


def requires_scope(scope: str) -> GuardFunc:
    """Guard: the token's ``scope`` must include ``scope``."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if scope not in claims_of(connection).scopes:
            raise _denied(f"scope {scope!r} required", "missing_scope")

    return guard
