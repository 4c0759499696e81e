"""Verify Keycloak access tokens and ``X-Auth-Assertion`` headers, in the service and downstream.

Depends only on joserfc, httpx and msgspec (Litestar only for the names of
:mod:`auth_service.verifier.litestar`, which load it on first use; pybase64, a faster
base64 decoder, when it is installed) and on nothing else in ``auth_service``.
A downstream Litestar app (keys load on the first token)::

    import httpx
    from litestar import Litestar, Request, get
    from auth_service import verifier as av
    ISSUER = "https://sso.example.com/realms/acme"
    keys = av.JWKSCache(f"{ISSUER}/protocol/openid-connect/certs", httpx.AsyncClient())
    verifier = av.TokenVerifier(issuer=ISSUER, audiences=["orders-api"], keys=keys)
    @get("/orders", guards=[av.requires_realm_role("app-user")])
    async def orders(request: Request) -> str | None:  # claims: request.state.auth_claims
        return request.state.auth_claims.username
    app = Litestar([orders], middleware=[av.verifier_middleware(verifier, exclude_paths=["/hc"])])

Keep the keys fresh with ``JWKSCache.run_background(stop_event)`` as a lifespan task.

Modules: :mod:`.jwks` (discovery, key cache), :mod:`.tokens` (access tokens,
claims, errors), :mod:`.assertion` (``X-Auth-Assertion``), :mod:`.headers` (the
encoding of the plain ``X-Auth-*`` headers: ``read_identity``, ``decode_items``),
:mod:`.asgi` (any ASGI app), :mod:`.litestar` (middleware factory and guards).
Every name is loaded from its module on first use, so checking a token with a
key (:mod:`.tokens`) does not import httpx or Litestar.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .asgi import CLAIMS_STATE_KEY, SupportsVerify, VerifierMiddleware
    from .assertion import AssertionClaims, AssertionVerifier
    from .headers import IdentityHeaders, decode_items, read_identity
    from .jwks import DiscoveryError, JWKSCache, ProviderMetadata, discover, parse_jwks
    from .litestar import (
        claims_of,
        requires_client_role,
        requires_realm_role,
        requires_scope,
        verifier_middleware,
    )
    from .tokens import (
        MISSING,
        BaseClaims,
        Claims,
        RealmJWTVerifier,
        TokenError,
        TokenErrorReason,
        TokenVerifier,
    )

__all__ = (
    "CLAIMS_STATE_KEY",
    "MISSING",
    "AssertionClaims",
    "AssertionVerifier",
    "BaseClaims",
    "Claims",
    "DiscoveryError",
    "IdentityHeaders",
    "JWKSCache",
    "ProviderMetadata",
    "RealmJWTVerifier",
    "SupportsVerify",
    "TokenError",
    "TokenErrorReason",
    "TokenVerifier",
    "VerifierMiddleware",
    "claims_of",
    "decode_items",
    "discover",
    "parse_jwks",
    "read_identity",
    "requires_client_role",
    "requires_realm_role",
    "requires_scope",
    "verifier_middleware",
)

_MODULE_OF = {
    "CLAIMS_STATE_KEY": "asgi",
    "SupportsVerify": "asgi",
    "VerifierMiddleware": "asgi",
    "AssertionClaims": "assertion",
    "AssertionVerifier": "assertion",
    "DiscoveryError": "jwks",
    "JWKSCache": "jwks",
    "ProviderMetadata": "jwks",
    "discover": "jwks",
    "parse_jwks": "jwks",
    "IdentityHeaders": "headers",
    "decode_items": "headers",
    "read_identity": "headers",
    "claims_of": "litestar",
    "requires_client_role": "litestar",
    "requires_realm_role": "litestar",
    "requires_scope": "litestar",
    "verifier_middleware": "litestar",
    "MISSING": "tokens",
    "BaseClaims": "tokens",
    "Claims": "tokens",
    "RealmJWTVerifier": "tokens",
    "TokenError": "tokens",
    "TokenErrorReason": "tokens",
    "TokenVerifier": "tokens",
}
"""Where each public name lives (loaded on first use)."""


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
