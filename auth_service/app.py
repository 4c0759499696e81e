"""The application factory: `create_app(settings)` builds the ASGI app; no I/O at import.

Request flow::

    AuthService.__call__
      ├── /authz/* → ForwardAuthEndpoint.lean (request id, metrics, access line, decision)
      └── otherwise, and traced forward-auth checks → Litestar
            EdgeMiddleware (request id, trace span, access log, HTTP metrics)
              ├── /authz/*  → ForwardAuthEndpoint (the ASGI app)
              └── otherwise → routing → controllers → domain services → stores

The lifespan (`auth_service.lifespan`) opens PostgreSQL, Redis and the shared
HTTP client, and builds the capability services (`auth_service.services`);
handlers reach them through the typed ``provide_*`` dependencies of
`auth_service.deps`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from litestar import Litestar
from litestar.openapi.config import OpenAPIConfig

from auth_service.audit.controllers import AuditController
from auth_service.config import Settings
from auth_service.deps import DEPENDENCIES
from auth_service.errors import exception_handlers
from auth_service.front import AuthService
from auth_service.health.controllers import HealthController
from auth_service.lifespan import make_lifespan
from auth_service.mfa.controllers import AdminMfaController, MfaController
from auth_service.mfa.pages import MfaPages
from auth_service.observability.edge import EdgeMiddleware
from auth_service.observability.logging import configure_logging
from auth_service.observability.metrics import Metrics
from auth_service.observability.tracing import configure_tracing, service_version
from auth_service.oidc.controllers import BrowserLoginController
from auth_service.openapi import document_problems
from auth_service.services import Services
from auth_service.tokens.api import TokenController
from auth_service.tokens.controllers import jwks
from auth_service.web import denied, signed_out, stylesheet

__all__ = ("create_app",)


def create_app(
    settings: Settings,
    *,
    idp_http: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
    configure_logs: bool = True,
) -> AuthService:
    """Build the service.

    Args:
        settings: validated settings (`auth_service.config.load_settings`).
        idp_http: HTTP client for IdP calls; tests may pass one with a mock transport.
        clock: wall clock of the MFA capability; tests pass one they move.
        configure_logs: set up structlog (tests that capture logs configure it themselves).
    """
    if configure_logs:
        configure_logging(fmt=settings.log_format, level=settings.log_level)
    configure_tracing(settings)
    metrics = Metrics(settings.metrics_dir)
    app = AuthService(
        route_handlers=[
            HealthController,
            AuditController,
            TokenController,
            BrowserLoginController,
            jwks,
            MfaController,
            AdminMfaController,
            MfaPages,
            stylesheet,
            denied,
            signed_out,
        ],
        dependencies=DEPENDENCIES,
        exception_handlers=exception_handlers,
        lifespan=[make_lifespan(settings, metrics, idp_http=idp_http, clock=clock)],
        openapi_config=OpenAPIConfig(
            title="auth-service", version=service_version(), path="/openapi"
        ),
        debug=False,
        logging_config=None,  # structlog is configured by us; Litestar must not add handlers
    )
    document_problems(app)
    app.state.settings = settings
    app.state.metrics = metrics
    edge = EdgeMiddleware(
        app.asgi_handler,  # type: ignore[arg-type]
        metrics=metrics,
        access_log=settings.access_log,
        log_allowed_checks=settings.access_log_checks == "all",
        always_trace=settings.otel_exporter_otlp_endpoint is not None,
        fast_routes=lambda path: _fast_route(app, path),
    )
    app.asgi_handler = edge  # type: ignore[assignment]
    return app


def _fast_route(app: Litestar, path: str) -> Any:
    """The lean handler for forward-auth paths, once the lifespan has built it."""
    if path.startswith("/authz/"):
        services: Services | None = getattr(app.state, "services", None)
        return None if services is None else services.forward_auth
    return None
