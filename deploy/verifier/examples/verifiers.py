"""The two verifiers a downstream service needs, configured from its environment.

``ASSERTION_ISSUER``
    The auth service's public URL (its ``AUTH_PUBLIC_URL``); its keys are read
    from ``<ASSERTION_ISSUER>/.well-known/jwks.json``.
``ASSERTION_AUDIENCE``
    This service's host name as the gateway sees it (the assertion's ``aud``).
``TOKEN_ISSUER``
    The Keycloak realm URL, e.g. ``https://sso.example.com/realms/acme``.
``TOKEN_AUDIENCE``
    The audience this service accepts in access tokens, e.g. ``orders-api``.

Keys load on the first request; a long-running service also keeps them fresh
with ``keys.run_background(stop_event)`` as a lifespan task.
"""

from __future__ import annotations

import os

import httpx

from auth_service import verifier as av

http = httpx.AsyncClient(timeout=5.0)

assertions = av.AssertionVerifier.for_service(
    os.environ["ASSERTION_ISSUER"], os.environ["ASSERTION_AUDIENCE"], http
)
"""Checks ``X-Auth-Assertion``: requests that came through the gateway."""

token_issuer = os.environ["TOKEN_ISSUER"].rstrip("/")
tokens = av.TokenVerifier(
    issuer=token_issuer,
    audiences=[os.environ["TOKEN_AUDIENCE"]],
    keys=av.JWKSCache(f"{token_issuer}/protocol/openid-connect/certs", http),
)
"""Checks ``Authorization: Bearer``: Keycloak access tokens of direct callers."""


def identity(claims: av.BaseClaims) -> dict[str, object]:
    """What the examples answer: who called, with which realm roles."""
    return {"sub": claims.sub, "roles": sorted(claims.realm_roles)}
