"""``GET /.well-known/jwks.json``: the public keys of ``X-Auth-Assertion`` (CONTRACT §7).

Downstream services (and HTTP caches between them) may keep the answer for
60 s; key rotation publishes a new key ``overlap`` seconds before it signs, so
this is safe as long as the overlap exceeds that plus the signer's refresh
interval (see `auth_service.tokens.keys`).
"""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency

from auth_service.errors import DependencyUnavailable
from auth_service.tokens.assertion import AssertionSigner

__all__ = ("jwks",)

_CACHE_CONTROL = {"Cache-Control": "public, max-age=60"}


@get(
    "/.well-known/jwks.json",
    media_type="application/jwk-set+json",
    summary="Public keys of X-Auth-Assertion",
)
async def jwks(
    assertions: NamedDependency[AssertionSigner],
) -> Response[dict[str, list[dict[str, Any]]]]:
    """The JWK Set of the keys assertions are (or are about to be) signed with.

    Answers 503 rather than an empty set, which a cache would keep for a minute.
    """
    document = assertions.jwks()
    if not document["keys"]:
        raise DependencyUnavailable(
            "signing keys are not loaded", reason="signing_keys_unavailable"
        )
    return Response(document, media_type="application/jwk-set+json", headers=_CACHE_CONTROL)
