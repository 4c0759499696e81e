"""Process-wide resources the lifespan opens and closes, reached through `app.state`.

Handlers receive them by dependency injection (`provide_resources`); the
capability services built on them are `auth_service.services.Services`. Nothing
opens a connection at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from redis.asyncio import Redis

from auth_service.config import Settings
from auth_service.observability.metrics import Metrics

if TYPE_CHECKING:  # the composition root is above every capability; only its type is named
    from auth_service.services import Services

__all__ = ("Resources", "provide_resources", "services_of")


@dataclass(frozen=True, slots=True)
class Resources:
    """Connections and shared services of one worker process."""

    settings: Settings
    metrics: Metrics
    pg: asyncpg.Pool
    redis: Redis
    http: httpx.AsyncClient


def provide_resources(state: State) -> Resources:
    """Dependency provider: the worker's `Resources`."""
    res: Resources = state.resources
    return res


def services_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Services:
    """The worker's `auth_service.services.Services`, for guards and request helpers.

    Handlers take single services as typed dependencies (`auth_service.deps`)
    instead.
    """
    services: Services = connection.app.state.services
    return services
