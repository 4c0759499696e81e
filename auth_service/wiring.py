"""Wires the capability services into a worker at startup (called by the lifespan).

Each capability owns its routes, models and storage; this module only builds
them with the worker's resources and registers what the HTTP layer needs.
"""

from __future__ import annotations

import contextlib

from litestar import Litestar

from auth_service.resources import Resources

__all__ = ("start_services",)


async def start_services(app: Litestar, res: Resources, stack: contextlib.AsyncExitStack) -> None:
    """Start every capability service; shutdown callbacks go on ``stack``."""
    return None
