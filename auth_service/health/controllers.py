"""``/health/live``, ``/health/ready`` and ``/metrics``.

Readiness runs the PostgreSQL and Redis checks concurrently, each bounded by
``AUTH_READY_TIMEOUT`` (1 s by default), so it answers within 2 s even when a
dependency hangs instead of refusing connections; the IdP's reachability comes
from the background `IdpProbe`, the rest from in-memory state. What the parts
add up to (``ok`` / ``degraded`` / ``down``) is `readiness.overall_status`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide

from auth_service.health.readiness import (
    DependencyStatus,
    IdpProbe,
    KeysState,
    OverallStatus,
    RevocationsState,
    keys_state,
    overall_status,
)
from auth_service.idp import OIDCProvider
from auth_service.observability.metrics import CONTENT_TYPE
from auth_service.resources import Resources, provide_resources
from auth_service.tokens.assertion import AssertionSigner
from auth_service.tokens.revocation import Revocations

__all__ = ("HealthController", "Readiness")


class Liveness(msgspec.Struct):
    """The process is up."""

    status: Literal["ok"] = "ok"


class Readiness(msgspec.Struct):
    """Each dependency's state and what they add up to (CONTRACT §10)."""

    status: OverallStatus
    """``ok``; ``degraded`` (200: something is down, decisions are still right); ``down`` (503)."""
    postgres: DependencyStatus
    redis: DependencyStatus
    oidc: DependencyStatus
    """Whether the realm answers (checked every 10 s), not whether cached keys still verify."""
    keys: KeysState
    """IdP signing keys: ``fresh``, ``stale`` (older than ``AUTH_JWKS_MAX_AGE``) or ``none``."""
    revocations: RevocationsState
    """This worker's revocation mirror: ``synced``, ``stale`` (Redis lost since) or ``never``."""
    assertion_keys: DependencyStatus
    """Whether this worker can sign ``X-Auth-Assertion`` (keys loaded from PostgreSQL)."""


async def _bounded(check: Callable[[], Awaitable[object]], timeout: float) -> DependencyStatus:
    try:
        async with asyncio.timeout(timeout):
            ok = await check()
    except Exception:
        return "down"
    return "ok" if ok is not False else "down"


class HealthController(Controller):
    """Operations endpoints; no authentication (the gateway should not expose them publicly)."""

    dependencies = {"res": Provide(provide_resources, sync_to_thread=False)}

    @get("/health/live", cache_control=None)
    async def live(self) -> Liveness:
        """The process answers."""
        return Liveness()

    @get("/health/ready")
    async def ready(
        self,
        res: NamedDependency[Resources],
        idp: NamedDependency[OIDCProvider],
        idp_probe: NamedDependency[IdpProbe],
        revocations: NamedDependency[Revocations],
        assertions: NamedDependency[AssertionSigner],
    ) -> Response[Readiness]:
        """200 when forward-auth decides correctly (``ok`` or ``degraded``), else 503."""
        timeout = res.settings.ready_timeout

        async def pg() -> object:
            return await res.pg.fetchval("SELECT 1")

        async def redis() -> object:
            return await res.redis.ping()

        pg_s, redis_s = await asyncio.gather(_bounded(pg, timeout), _bounded(redis, timeout))
        oidc_s: DependencyStatus = "ok" if idp_probe.reachable else "down"
        keys = keys_state(idp.jwks)
        mirror: RevocationsState = "never"
        if revocations.ever_synced:
            mirror = "synced" if revocations.synced.is_set() else "stale"
        assertion_keys: DependencyStatus = "ok" if assertions.ready else "down"
        overall = overall_status(
            postgres=pg_s,
            redis=redis_s,
            oidc=oidc_s,
            keys=keys,
            revocations=mirror,
            assertion_keys=assertion_keys,
        )
        body = Readiness(
            status=overall,
            postgres=pg_s,
            redis=redis_s,
            oidc=oidc_s,
            keys=keys,
            revocations=mirror,
            assertion_keys=assertion_keys,
        )
        headers = {"Cache-Control": "no-store"}
        if overall == "down":
            headers["Retry-After"] = "5"
        return Response(body, status_code=503 if overall == "down" else 200, headers=headers)

    @get("/metrics", media_type=CONTENT_TYPE)
    async def metrics(self, res: NamedDependency[Resources]) -> bytes:
        """Prometheus text exposition of this worker's metrics."""
        return res.metrics.render()
