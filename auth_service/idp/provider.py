"""The realm as seen by this service: discovery with retry, the JWKS cache, the token verifiers.

The IdP may be down when the service starts (containers start in any order),
so discovery runs in a background task with exponential backoff; until it
succeeds `verifier` is ``None``, readiness reports ``oidc: down`` and token
checks answer 503. Once discovered, the JWKS cache keeps itself fresh in the
background and keeps serving cached keys while Keycloak is unreachable.
"""

from __future__ import annotations

import asyncio
import random

import httpx
import structlog

from auth_service.config import Settings
from auth_service.observability.metrics import Metrics
from auth_service.verifier import (
    DiscoveryError,
    JWKSCache,
    ProviderMetadata,
    RealmJWTVerifier,
    TokenVerifier,
    discover,
)

__all__ = ("LOGOUT_TOKEN_TYPES", "OIDCProvider", "idp_headers")

LOGOUT_TOKEN_TYPES = frozenset({"logout+jwt", "application/logout+jwt", "jwt"})
"""Header ``typ`` of back-channel logout tokens (Keycloak 24 sends ``JWT``)."""

log = structlog.get_logger("auth_service.oidc")


def idp_headers() -> dict[str, str]:
    """Headers for calls to the IdP: the current request id (CONTRACT §2)."""
    rid = structlog.contextvars.get_contextvars().get("request_id")
    return {"X-Request-ID": rid} if isinstance(rid, str) else {}


class OIDCProvider:
    """Discovery metadata, keys and the access-token verifier of the configured realm."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient, metrics: Metrics) -> None:
        self.settings = settings
        self.http = http
        self.metrics = metrics
        self.metadata: ProviderMetadata | None = None
        self.jwks: JWKSCache | None = None
        self.verifier: TokenVerifier | None = None
        """Access tokens (bearer)."""
        self.id_tokens: RealmJWTVerifier | None = None
        """ID tokens of the login callback (``aud`` is this client)."""
        self.logout_tokens: RealmJWTVerifier | None = None
        """Back-channel logout tokens (``aud`` is this client, header ``typ`` checked)."""
        self.discovered = asyncio.Event()

    @property
    def ready(self) -> bool:
        """Discovered and holding keys that were fetched within ``AUTH_JWKS_MAX_AGE``."""
        return self.jwks is not None and self.jwks.healthy

    async def run(self, stop: asyncio.Event) -> None:
        """Discover (retrying with backoff), then keep the JWKS fresh until ``stop``."""
        delay = 0.25
        while not stop.is_set() and self.metadata is None:
            try:
                self.metadata = await discover(
                    self.settings.oidc_issuer,
                    self.http,
                    fetch_timeout=self.settings.idp_timeout,
                    headers=idp_headers(),
                )
            except DiscoveryError as exc:
                log.warning("oidc_discovery_failed", error=str(exc), retry_in=round(delay, 2))
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 15.0) * random.uniform(0.8, 1.2)
        if self.metadata is None:
            return
        self.jwks = JWKSCache(
            self.metadata.jwks_uri,
            self.http,
            min_refresh_interval=self.settings.jwks_min_refresh_interval,
            max_age=self.settings.jwks_max_age,
            fetch_timeout=self.settings.idp_timeout,
            on_fetch=lambda outcome: self.metrics.jwks_fetches.labels(outcome).inc(),
            headers_factory=idp_headers,
        )
        self.verifier = TokenVerifier(
            issuer=self.settings.oidc_issuer,
            audiences=self.settings.audiences,
            keys=self.jwks,
            algorithms=self.settings.oidc_algorithms,
            leeway=self.settings.oidc_leeway,
        )
        self.id_tokens = RealmJWTVerifier(
            issuer=self.settings.oidc_issuer,
            audience=self.settings.oidc_client_id,
            keys=self.jwks,
            algorithms=self.settings.oidc_algorithms,
            leeway=self.settings.oidc_leeway,
        )
        self.logout_tokens = RealmJWTVerifier(
            issuer=self.settings.oidc_issuer,
            audience=self.settings.oidc_client_id,
            keys=self.jwks,
            algorithms=self.settings.oidc_algorithms,
            leeway=self.settings.oidc_leeway,
            header_types=LOGOUT_TOKEN_TYPES,
        )
        log.info("oidc_discovered", issuer=self.metadata.issuer)
        self.discovered.set()
        await self.jwks.run_background(stop)
