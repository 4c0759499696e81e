"""The identity provider (a Keycloak realm) as a client sees it; below `tokens`, `sessions`, `oidc`.

::

    provider.py   discovery with retry, the JWKS cache, the verifiers of access,
                  ID and back-channel logout tokens (all `auth_service.verifier`)
    client.py     the token endpoint (code exchange, refresh), token revocation
                  and introspection, over the worker's shared HTTP client
    tokens.py     ID-token and logout-token checks beyond the JWS ones

Nothing here knows about sessions, cookies or HTTP handlers; the browser flows
(`auth_service.oidc`) and the authenticator (`auth_service.tokens`) use it.
"""

from __future__ import annotations

from auth_service.idp.client import GrantRefused, IdPClient, IdPUnavailable
from auth_service.idp.provider import LOGOUT_TOKEN_TYPES, OIDCProvider, idp_headers
from auth_service.idp.tokens import (
    BACKCHANNEL_EVENT,
    LOGOUT_TOKEN_MAX_AGE,
    IdPTokenInvalid,
    LogoutClaims,
    NotReady,
    validate_id_token,
    validate_logout_token,
)

__all__ = (
    "BACKCHANNEL_EVENT",
    "LOGOUT_TOKEN_MAX_AGE",
    "LOGOUT_TOKEN_TYPES",
    "GrantRefused",
    "IdPClient",
    "IdPTokenInvalid",
    "IdPUnavailable",
    "LogoutClaims",
    "NotReady",
    "OIDCProvider",
    "idp_headers",
    "validate_id_token",
    "validate_logout_token",
)
