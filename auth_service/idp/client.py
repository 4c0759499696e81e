"""Calls to the realm's endpoints: token (code exchange, refresh), revocation, introspection.

Every call uses the worker's shared HTTP client, this service's client
credentials (HTTP Basic), ``AUTH_IDP_TIMEOUT`` and the request id header. The
token endpoint's answers become two errors: `GrantRefused` when the IdP said
no (an OAuth error, 4xx) and `IdPUnavailable` when it could not answer (network,
5xx, junk); callers decide what each means for them (a failed code exchange, a
refused refresh).
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import structlog
from authlib.oauth2.rfc6749.parameters import prepare_token_request

from auth_service.config import Settings
from auth_service.idp.provider import OIDCProvider, idp_headers
from auth_service.verifier import ProviderMetadata

__all__ = ("GrantRefused", "IdPClient", "IdPUnavailable")

log = structlog.get_logger("auth_service.idp")


class GrantRefused(Exception):
    """The token endpoint refused the grant; ``error`` is its OAuth error code."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class IdPUnavailable(Exception):
    """The IdP could not answer (not discovered, unreachable, 5xx, not JSON)."""


class IdPClient:
    """The realm's token, revocation and introspection endpoints."""

    def __init__(self, settings: Settings, provider: OIDCProvider) -> None:
        self.settings = settings
        self.provider = provider
        self.client_id = settings.oidc_client_id
        self._auth = (settings.oidc_client_id, settings.oidc_client_secret)

    @property
    def http(self) -> httpx.AsyncClient:
        """The worker's shared HTTP client."""
        return self.provider.http

    def metadata(self) -> ProviderMetadata:
        """The discovery document; `IdPUnavailable` until discovery succeeded."""
        metadata = self.provider.metadata
        if metadata is None or self.provider.jwks is None:
            raise IdPUnavailable("identity provider is not discovered yet")
        return metadata

    async def token_request(self, grant_type: str, **params: str) -> dict[str, Any]:
        """POST to the token endpoint; the JSON answer of a 200.

        Raises:
            GrantRefused: an OAuth error answer (4xx).
            IdPUnavailable: no endpoint, network error, 5xx, or not a JSON object.
        """
        endpoint = self.metadata().token_endpoint
        if endpoint is None:
            raise IdPUnavailable("no token endpoint")
        body = prepare_token_request(grant_type, **params)
        try:
            response = await self.http.post(
                endpoint,
                content=body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                    **idp_headers(),
                },
                auth=self._auth,
                timeout=self.settings.idp_timeout,
            )
        except httpx.HTTPError as exc:
            raise IdPUnavailable(exc.__class__.__name__) from exc
        try:
            payload = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            payload = None
        if response.status_code >= 500 or not isinstance(payload, dict):
            raise IdPUnavailable(f"token endpoint answered {response.status_code}")
        if response.status_code != 200:
            error = payload.get("error")
            raise GrantRefused(error if isinstance(error, str) else "invalid_response")
        return payload

    async def revoke_refresh_token(self, refresh_token: str) -> None:
        """RFC 7009 revocation of a refresh token; failures are logged, never raised."""
        metadata = self.provider.metadata
        if metadata is None or metadata.revocation_endpoint is None:
            return
        try:
            response = await self.http.post(
                metadata.revocation_endpoint,
                data={"token": refresh_token, "token_type_hint": "refresh_token"},
                auth=self._auth,
                headers=idp_headers(),
                timeout=self.settings.idp_timeout,
            )
            if response.status_code != 200:
                log.warning("idp_revocation_failed", status=response.status_code)
        except httpx.HTTPError as exc:
            log.warning("idp_revocation_failed", error=exc.__class__.__name__)

    async def introspect(self, token: str) -> dict[str, Any] | None:
        """RFC 7662 introspection of an access token; the answer, or ``None`` if not an object.

        Raises:
            httpx.HTTPError, ValueError, msgspec.DecodeError: no answer to rely on.
        """
        metadata = self.provider.metadata
        if metadata is None or metadata.introspection_endpoint is None:
            raise ValueError("no introspection endpoint")
        response = await self.http.post(
            metadata.introspection_endpoint,
            data={"token": token, "token_type_hint": "access_token"},
            auth=self._auth,
            headers=idp_headers(),
            timeout=min(self.settings.idp_timeout, self.settings.introspection_timeout),
        )
        if response.status_code != 200:
            raise ValueError(f"introspection answered {response.status_code}")
        body = msgspec.json.decode(response.content)
        return body if isinstance(body, dict) else None
