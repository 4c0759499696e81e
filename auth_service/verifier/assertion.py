"""Verifying the ``X-Auth-Assertion`` header that the auth service adds to allowed requests.

The gateway forwards the plain ``X-Auth-*`` headers too, but a downstream service
that can be reached without the gateway must not trust them. The assertion is a JWT
the auth service signs with its own ES256 key (CONTRACT.md §4)::

    header  {"alg": "ES256", "kid": "...", "typ": "JWT"}
    claims  {"iss": "<AUTH_PUBLIC_URL>", "aud": "<original host>", "sub": "...",
             "roles": ["app-user"], "client_roles": {"acme-api": ["reader"]},
             "amr": ["pwd", "otp"], "sid": "...", "iat": ..., "exp": <= iat + 60,
             "jti": "...", "tenant_id": "t-001", ...configured attributes}

:class:`AssertionVerifier` runs the same engine as
:class:`~auth_service.verifier.tokens.TokenVerifier`, configured for that shape:
only ES256, one audience (this service's host) and no ``azp`` fallback, no ``typ``
check, and 5 s of leeway because the lifetime is at most a minute. Its keys come
from ``<AUTH_PUBLIC_URL>/.well-known/jwks.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from .jwks import JWKSCache
from .tokens import BaseClaims, _JWTVerifier, shared_strings

__all__ = ("AssertionClaims", "AssertionVerifier")


class AssertionClaims(BaseClaims, frozen=True, kw_only=True):
    """The verified claims of an ``X-Auth-Assertion``.

    ``realm_roles`` is read from the ``roles`` claim and ``client_roles`` from
    ``client_roles`` (``{client: [role, ...]}``); custom attributes are top-level
    claims, reachable with :meth:`claim` and :meth:`attributes`.
    """

    amr: frozenset[str]
    """Authentication methods; contains ``"otp"`` once the TOTP second factor passed."""

    @property
    def mfa(self) -> bool:
        """Whether the session passed the TOTP second factor."""
        return "otp" in self.amr

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> AssertionClaims:
        """Build from a decoded claims object (already verified by the caller).

        Raises:
            ValueError: if ``exp`` is missing or not a number.
        """
        client_roles = raw.get("client_roles")
        return cls(
            **cls._common(raw),
            realm_roles=shared_strings(raw.get("roles")),
            client_roles=(
                {c: shared_strings(r) for c, r in client_roles.items()}
                if isinstance(client_roles, dict)
                else {}
            ),
            amr=shared_strings(raw.get("amr")),
        )


class AssertionVerifier(_JWTVerifier[AssertionClaims]):
    """Verifies ``X-Auth-Assertion`` JWTs; :meth:`verify` raises ``TokenError``.

    Args:
        issuer: The auth service's public URL (``AUTH_PUBLIC_URL``), compared exactly.
        audience: This service's host name as the gateway sees it (the ``aud``).
        keys: JWKS cache of ``<issuer>/.well-known/jwks.json``.
        leeway: Clock skew tolerated, in seconds.
        clock: Wall-clock seconds since the epoch; injectable for tests.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: JWKSCache,
        leeway: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            issuer=issuer,
            audiences=(audience,),
            keys=keys,
            algorithms=("ES256",),
            leeway=leeway,
            max_bytes=16384,
            token_types=None,
            accept_azp=False,
            clock=clock,
            claims_factory=AssertionClaims.from_raw,
        )

    @classmethod
    def for_service(
        cls, public_url: str, audience: str, http: httpx.AsyncClient, **cache_options: Any
    ) -> AssertionVerifier:
        """A verifier for the auth service at ``public_url``, with its own JWKS cache.

        ``cache_options`` go to :class:`~auth_service.verifier.jwks.JWKSCache`
        (e.g. ``headers_factory``).
        """
        jwks_uri = public_url.rstrip("/") + "/.well-known/jwks.json"
        keys = JWKSCache(jwks_uri, http, **cache_options)
        return cls(issuer=public_url, audience=audience, keys=keys)
