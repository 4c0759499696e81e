"""ASGI entry point for servers: ``auth_service.asgi:app_from_env`` (a factory)."""

from __future__ import annotations

from litestar import Litestar

from auth_service.app import create_app
from auth_service.config import load_settings

__all__ = ("app_from_env",)


def app_from_env() -> Litestar:
    """Build the app from the environment; used by each server worker process."""
    return create_app(load_settings())
