"""``/health/live``, ``/health/ready`` and ``/metrics``.

Readiness runs the dependency checks concurrently, each bounded by
``AUTH_READY_TIMEOUT`` (1 s by default), so it answers within 2 s even when a
dependency hangs instead of refusing connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide

from auth_service.idp import OIDCProvider
from auth_service.observability.metrics import CONTENT_TYPE
from auth_service.resources import Resources, provide_resources

__all__ = ("HealthController", "Readiness")

Status = Literal["ok", "down"]


class Liveness(msgspec.Struct):
    """The process is up."""

    status: Literal["ok"] = "ok"


class Readiness(msgspec.Struct):
    """Each dependency's state; ``status`` is ``ok`` only when all are."""

    status: Status
    postgres: Status
    redis: Status
    oidc: Status


async def _bounded(check: Callable[[], Awaitable[object]], timeout: float) -> Status:
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
        self, res: NamedDependency[Resources], idp: NamedDependency[OIDCProvider]
    ) -> Response[Readiness]:
        """200 when PostgreSQL, Redis and the IdP keys are usable, else 503."""
        timeout = res.settings.ready_timeout

        async def pg() -> object:
            return await res.pg.fetchval("SELECT 1")

        async def redis() -> object:
            return await res.redis.ping()

        async def oidc() -> object:
            return idp.ready

        pg_s, redis_s, oidc_s = await asyncio.gather(
            _bounded(pg, timeout), _bounded(redis, timeout), _bounded(oidc, timeout)
        )
        overall: Status = "ok" if pg_s == redis_s == oidc_s == "ok" else "down"
        body = Readiness(status=overall, postgres=pg_s, redis=redis_s, oidc=oidc_s)
        headers = {"Cache-Control": "no-store"}
        if overall == "down":
            headers["Retry-After"] = "5"
        return Response(body, status_code=200 if overall == "ok" else 503, headers=headers)

    @get("/metrics", media_type=CONTENT_TYPE)
    async def metrics(self, res: NamedDependency[Resources]) -> bytes:
        """Prometheus text exposition of this worker's metrics."""
        return res.metrics.render()
