"""Startup and shutdown of one worker: pools, clients and background services."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import asyncpg
import httpx
import structlog
from litestar import Litestar
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from auth_service.config import Settings
from auth_service.front import AuthService
from auth_service.observability.metrics import Metrics
from auth_service.resources import Resources
from auth_service.services import Services, build_services

__all__ = ("make_lifespan", "redis_client", "worker")

log = structlog.get_logger("auth_service.lifespan")


def redis_client(settings: Settings) -> Redis:
    """The worker's Redis client.

    Pooled connections outlive a Redis restart or failover as dead sockets; without
    a retry, the first command on each of them failed (a 503 for that request) even
    though Redis was back. A command that fails with a connection error is retried
    once, at once, on a new connection: while Redis is really down that fails just
    as fast (connection refused). Timeouts are not retried: a slow Redis must not
    double a request's wait.
    """
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        health_check_interval=15,
        retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
    )


def _tune_gc() -> None:
    """Keep the cyclic GC from pausing the hot path.

    Cached tokens are never walked by the collector (`auth_service.tokens.identity`).
    What is left: start-up objects (modules, the app, the policy) are frozen out of
    collection, and the young-generation threshold is raised, so collections are
    rarer and cheaper; ``make bench`` reports the largest pause under load.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def make_lifespan(
    settings: Settings,
    metrics: Metrics,
    *,
    idp_http: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """The lifespan of an app built by `auth_service.app.create_app` with these arguments."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with worker(settings, metrics, idp_http=idp_http, clock=clock) as services:
            app.state.resources = services.resources
            app.state.services = services
            if isinstance(app, AuthService) and settings.otel_exporter_otlp_endpoint is None:
                app.lean = services.forward_auth  # every request traced: the general path
            _tune_gc()
            log.info("started")
            try:
                yield
            finally:
                if isinstance(app, AuthService):
                    app.lean = None
            log.info("stopping")

    return lifespan


@contextlib.asynccontextmanager
async def worker(
    settings: Settings,
    metrics: Metrics,
    *,
    idp_http: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[Services]:
    """Open the worker's resources, build its services, and close everything afterwards."""
    # min_size=0: start even when PostgreSQL is down; readiness reports it.
    pg = await asyncpg.create_pool(
        settings.database_url, min_size=0, max_size=settings.db_pool_max, timeout=5.0
    )
    redis = redis_client(settings)
    owned_http = idp_http is None
    http = (
        httpx.AsyncClient(timeout=settings.idp_timeout, limits=httpx.Limits(max_connections=50))
        if idp_http is None
        else idp_http
    )
    res = Resources(settings=settings, metrics=metrics, pg=pg, redis=redis, http=http)
    try:
        async with build_services(res, clock=clock) as services:
            yield services
    finally:
        if owned_http:
            await http.aclose()
        await redis.aclose()
        await pg.close()
