"""Authenticating bearer tokens: cache first, then the verifier, then introspection if needed.

`Authenticator.cached` is the hot path: a hash, a dict lookup, an expiry check
and an in-memory revocation check, no I/O. Only a token not seen before goes
through `authenticate`, which verifies the signature and claims
(`auth_service.verifier`).

Keycloak lightweight access tokens (CONTRACT §4) are recognised by shape only
(`is_lightweight`: no ``sub``, or neither ``realm_access`` nor
``resource_access``). Only such a token that lacks claims the policy or the
header map needs is completed from the realm's introspection endpoint: one call
per token (single-flight), bounded by ``AUTH_INTROSPECTION_TIMEOUT``, whose
answer or failure is cached until the token expires. A full token that merely
lacks an optional claim (no ``groups``, no ``tenant_id``) is decided on what it
carries and never causes an IdP call.

A failed completion answers 503 ``idp_unavailable`` (CONTRACT §4, "dependency
down and the decision cannot be made safely"), also for later requests with the
same token, without asking the IdP again; an answer ``active: false`` is a 401
``token_inactive``, likewise cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import msgspec
import structlog

from auth_service.config import Settings
from auth_service.errors import DependencyUnavailable
from auth_service.idp import IdPClient, OIDCProvider
from auth_service.observability.metrics import Metrics
from auth_service.tokens.cache import ExpiringCache, TokenCache, token_key
from auth_service.tokens.identity import Authenticated
from auth_service.tokens.rejections import TokenRejected, bearer_challenge
from auth_service.tokens.revocation import Revocations
from auth_service.verifier import TokenError

__all__ = ("Authenticator", "TokenRejected", "bearer_challenge", "is_lightweight")

log = structlog.get_logger("auth_service.tokens")

# Rejections worth caching briefly: they cannot turn valid later. ``unknown_kid`` can
# (after a key rotation) and ``token_not_yet_valid`` will, so they are not cached.
_STICKY = frozenset(
    {
        "malformed",
        "unsupported_alg",
        "forbidden_header",
        "bad_signature",
        "token_expired",
        "wrong_issuer",
        "wrong_audience",
        "wrong_token_type",
        "missing_claim",
        "token_inactive",
    }
)
_DESCRIPTIONS = {
    "token_revoked": "token revoked",
    "token_inactive": "token is not active at the identity provider",
}


def is_lightweight(raw: Mapping[str, Any]) -> bool:
    """Whether verified claims have Keycloak's lightweight access-token shape (CONTRACT §4)."""
    return "sub" not in raw or ("realm_access" not in raw and "resource_access" not in raw)


_INTROSPECTION_FAILURES = (httpx.HTTPError, ValueError, msgspec.DecodeError, TimeoutError)
"""What a failed introspection call raises (``ValueError``: a non-200 answer or no endpoint)."""


def _naming(rid: str | None) -> contextlib.AbstractContextManager[object]:
    """Log lines inside name request ``rid`` (nothing to bind for ``None``: the caller did)."""
    if rid is None:
        return contextlib.nullcontext()
    return structlog.contextvars.bound_contextvars(request_id=rid)


def _introspection_unavailable() -> DependencyUnavailable:
    return DependencyUnavailable(
        "identity provider introspection unavailable", reason="idp_unavailable"
    )


class Authenticator:
    """Turns a bearer token into an `Authenticated` identity or a `TokenRejected`."""

    def __init__(
        self,
        settings: Settings,
        provider: OIDCProvider,
        idp: IdPClient,
        revocations: Revocations,
        metrics: Metrics,
        *,
        needed_claims: Callable[[], frozenset[str]],
        claim_paths: Callable[[], tuple[str, ...]] = tuple,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.idp = idp
        self.revocations = revocations
        self.metrics = metrics
        self.needed_claims = needed_claims
        self.claim_paths = claim_paths
        self.claim_headers = settings.claim_header_map
        self.max_bytes = 16 * 1024
        self.cache: TokenCache[Authenticated] = TokenCache(settings.token_cache_size, clock)
        self.rejected: ExpiringCache[tuple[str, str]] = ExpiringCache(10_000, clock)
        self.incomplete: ExpiringCache[str] = ExpiringCache(10_000, clock)
        """Lightweight tokens whose completion failed (until they expire): why."""
        self._clock = clock
        self._introspecting: dict[bytes, asyncio.Task[dict[str, Any] | None]] = {}
        self._hits = metrics.token_cache.labels("hit")
        self._misses = metrics.token_cache.labels("miss")

    def cached(self, token: str) -> Authenticated | None:
        """The cached identity of ``token``, without I/O; raises `TokenRejected` if known bad."""
        return self.lookup(token)[1]

    def lookup(self, token: str) -> tuple[bytes, Authenticated | None]:
        """`cached`, also returning the token's cache key (hand it to `verify_new` on a miss)."""
        if len(token) > self.max_bytes:
            raise TokenRejected("token_too_large", "token exceeds 16 KiB")
        key = token_key(token)
        hit = self.cache.get(key)
        if hit is None:
            bad = self.rejected.get(key)
            if bad is not None:
                raise TokenRejected(*bad)
            self._misses.inc()
            return key, None
        self._hits.inc()
        if self.revocations.is_revoked(hit.sid, hit.jti):
            raise TokenRejected("token_revoked", _DESCRIPTIONS["token_revoked"])
        return key, hit

    async def authenticate(self, token: str) -> Authenticated:
        """Verify ``token`` (using the cache when possible)."""
        hit = self.cached(token)
        if hit is not None:
            return hit
        return await self.verify_new(token)

    async def verify_new(
        self, token: str, key: bytes | None = None, rid: str | None = None
    ) -> Authenticated:
        """Verify a token that `cached` did not know (the caller checked the cache).

        ``key`` is the token's cache key when the caller has it from `lookup`. ``rid``:
        the request id to bind to the log lines of the I/O this may do (a JWKS refresh,
        introspection), for a caller that has not bound it (the lean forward-auth path).
        """
        verifier = self.provider.verifier
        if verifier is None:
            raise DependencyUnavailable(
                "identity provider keys are not available yet", reason="idp_unavailable"
            )
        if key is None:
            key = token_key(token)
        if self.incomplete.get(key) is not None:
            raise _introspection_unavailable()
        try:
            verified = verifier.verify_claims_now(token)
            if verified is None:  # its key needs a JWKS refresh
                with _naming(rid):
                    verified = await verifier.verify_claims(token)
            raw, payload = verified
        except TokenError as exc:
            self._reject(key, exc.reason, exc.description)
        sid, jti = raw.get("sid"), raw.get("jti")
        if self.revocations.is_revoked(
            sid if isinstance(sid, str) else None, jti if isinstance(jti, str) else None
        ):
            raise TokenRejected("token_revoked", _DESCRIPTIONS["token_revoked"])
        if is_lightweight(raw) and any(c not in raw for c in self.needed_claims()):
            with _naming(rid):
                raw = await self._complete(token, key, raw)
            payload = msgspec.json.encode(raw)
        entry = Authenticated.build(
            raw,
            key=key,
            payload=payload,
            claim_headers=self.claim_headers,
            claim_paths=self.claim_paths(),
        )
        self.cache.put(key, entry)
        return entry

    def _reject(self, key: bytes, reason: str, description: str, until: float | None = None) -> Any:
        if reason in _STICKY:
            self.rejected.put(key, (reason, description), until or self._clock() + 60)
        raise TokenRejected(reason, description)

    async def _complete(self, token: str, key: bytes, raw: dict[str, Any]) -> dict[str, Any]:
        """Fill in claims of a lightweight token from the IdP's introspection endpoint.

        Concurrent requests with the same token share one call; its failure is cached
        (`incomplete`) until the token expires, so it is not repeated per request.
        """
        task = self._introspecting.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._introspect_once(token, key, float(raw["exp"]))
            )
            self._introspecting[key] = task
            task.add_done_callback(lambda _: self._introspecting.pop(key, None))
        try:
            result = await asyncio.shield(task)
        except _INTROSPECTION_FAILURES as exc:
            raise _introspection_unavailable() from exc
        if result is None or result.get("active") is not True:
            self._reject(key, "token_inactive", _DESCRIPTIONS["token_inactive"], raw["exp"])
        assert result is not None
        merged = {**result, **raw}
        merged.pop("active", None)
        return merged

    async def _introspect_once(self, token: str, key: bytes, exp: float) -> dict[str, Any] | None:
        """One bounded introspection call, counted by outcome; a failure is remembered."""
        counter = self.metrics.introspections
        try:
            async with asyncio.timeout(self.settings.introspection_timeout):
                result = await self._introspect(token)
        except _INTROSPECTION_FAILURES as exc:
            timeout = isinstance(exc, TimeoutError | httpx.TimeoutException)
            counter.labels("timeout" if timeout else "error").inc()
            log.warning("idp_introspection_failed", error=exc.__class__.__name__)
            self.incomplete.put(key, exc.__class__.__name__, exp)
            raise
        active = result is not None and result.get("active") is True
        counter.labels("ok" if active else "inactive").inc()
        return result

    async def _introspect(self, token: str) -> dict[str, Any] | None:
        return await self.idp.introspect(token)
