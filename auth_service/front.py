"""The ASGI application servers run: Litestar with the lean forward-auth path in front."""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from auth_service.observability.edge import LeanRoute

__all__ = ("AuthService",)


class AuthService(Litestar):
    """The Litestar app with the lean forward-auth path in front of it.

    A forward-auth check (``/authz/*``) is answered by `ForwardAuthEndpoint.lean`
    before Litestar sees it, once the lifespan has built the services and unless every
    request is traced; the endpoint hands a request back (a W3C ``traceparent``) to go
    the general way: Litestar, `EdgeMiddleware` (span, request id, access line), then
    the same endpoint as an ASGI app.
    """

    lean: LeanRoute | None = None
    """The lean forward-auth route; set by the lifespan."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        lean = self.lean
        if (
            lean is not None
            and scope["type"] == "http"
            and scope["path"].startswith("/authz/")
            and await lean.lean(scope, send)
        ):
            return
        await super().__call__(scope, receive, send)
