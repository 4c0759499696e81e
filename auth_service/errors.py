"""One error tree and one problem+json renderer (RFC 9457, CONTRACT §4).

::

    AuthError                     400 any client-visible failure
    ├── NotAuthenticated          401 no or bad credentials (carries WWW-Authenticate)
    ├── AccessDenied              403 authenticated, requirement not met
    ├── NotFound                  404
    ├── Conflict                  409
    ├── TooManyAttempts           429 (carries Retry-After)
    └── DependencyUnavailable     503 a dependency is down; decision cannot be made safely

Services raise these; only the HTTP edge turns them into responses. Every
error body has ``type``, ``title``, ``status``, ``detail``, ``request_id`` and,
for authorization failures, ``reason``. Bodies never carry stack traces,
tokens or secrets: unexpected errors are logged once with the traceback and
answered with a generic 500.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from auth_service.request_id import request_id

__all__ = (
    "PROBLEM_BASE",
    "PROBLEM_JSON",
    "AccessDenied",
    "AuthError",
    "BadRequest",
    "Conflict",
    "DependencyUnavailable",
    "NotAuthenticated",
    "NotFound",
    "Problem",
    "TooManyAttempts",
    "accepts_html",
    "exception_handlers",
    "problem_body",
    "problem_response",
)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://auth-service.dev/problems/"
log = structlog.get_logger("auth_service.errors")


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    request_id: str
    reason: str | None = None
    errors: list[str] | None = None


class AuthError(Exception):
    """Base of every client-visible error."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"
    default_reason: ClassVar[str] = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        reason: str | None = None,
        headers: dict[str, str] | None = None,
        errors: list[str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason or self.default_reason
        self.headers = headers or {}
        self.errors = errors
        self.attempts_left: int | None = None
        """For a wrong second-factor code: codes that may still be tried before a lock."""


class BadRequest(AuthError):
    """400: the request itself is invalid."""


class NotAuthenticated(AuthError):
    """401: credentials missing or invalid."""

    status = 401
    title = "Unauthorized"
    default_reason = "authentication_required"


class AccessDenied(AuthError):
    """403: authenticated, but a requirement is not met."""

    status = 403
    title = "Forbidden"
    default_reason = "access_denied"


class NotFound(AuthError):
    """404: no such resource."""

    status = 404
    title = "Not found"
    default_reason = "not_found"


class Conflict(AuthError):
    """409: the resource is in a state that forbids the request."""

    status = 409
    title = "Conflict"
    default_reason = "conflict"


class TooManyAttempts(AuthError):
    """429: rate limited or locked out; ``Retry-After`` says for how long."""

    status = 429
    title = "Too many requests"
    default_reason = "too_many_attempts"


class DependencyUnavailable(AuthError):
    """503: a dependency needed for the decision is down."""

    status = 503
    title = "Service unavailable"
    default_reason = "dependency_unavailable"

    def __init__(self, detail: str, *, reason: str | None = None, retry_after: int = 5) -> None:
        super().__init__(detail, reason=reason, headers={"Retry-After": str(retry_after)})


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def problem_body(
    status: int,
    detail: str,
    rid: str,
    *,
    reason: str | None = None,
    errors: list[str] | None = None,
) -> bytes:
    """Encode a problem document; used by Litestar handlers and the lean forward-auth path."""
    slug = reason or _TITLES.get(status, "error").lower().replace(" ", "_")
    return msgspec.json.encode(
        Problem(
            type=PROBLEM_BASE + slug,
            title=_TITLES.get(status, "Error"),
            status=status,
            detail=detail,
            request_id=rid,
            reason=reason,
            errors=errors,
        )
    )


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    *,
    reason: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[str] | None = None,
) -> Response[bytes]:
    body = problem_body(status, detail, request_id(request.scope), reason=reason, errors=errors)
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


_respond = problem_response


def accepts_html(request: Request[Any, Any, Any]) -> bool:
    """Whether the client takes an HTML page (a browser); everyone else gets problem+json."""
    return "text/html" in (request.headers.get("accept") or "")


def _auth_error(request: Request[Any, Any, Any], exc: AuthError) -> Response[bytes]:
    return _respond(
        request, exc.status, exc.detail, reason=exc.reason, headers=exc.headers, errors=exc.errors
    )


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    errors: list[str] | None = None
    detail = exc.detail if exc.status_code < 500 else "internal error"
    if isinstance(exc, ValidationException):
        errors = [_describe(e) for e in (exc.extra or []) if isinstance(exc.extra, list)]
        detail = "request validation failed"
    headers = {
        k: v for k, v in (exc.headers or {}).items() if k.lower() in ("allow", "retry-after")
    }
    return _respond(request, exc.status_code, detail, headers=headers or None, errors=errors)


def _describe(item: Any) -> str:
    if isinstance(item, dict):
        key, msg = item.get("key"), item.get("message", "invalid")
        return f"{key}: {msg}" if key else str(msg)
    return str(item)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("unhandled_error", path=request.url.path, exc_info=exc)
    return _respond(request, 500, "internal error")


exception_handlers: dict[Any, Any] = {
    AuthError: _auth_error,
    HTTPException: _http_error,
    500: _unexpected,
}
"""Litestar exception handlers: register on the app."""
