"""Plain ASGI middleware: no request passes without a verified token.

:class:`VerifierMiddleware` wraps any ASGI app (Litestar, FastAPI/Starlette, a bare
callable). For each ``http`` and ``websocket`` connection whose path is not
excluded it reads the credential, awaits ``verifier.verify(token)`` and then:

* on success stores the claims in ``scope["state"]["auth_claims"]``
  (:data:`CLAIMS_STATE_KEY`; in Litestar: ``request.state.auth_claims``) and calls
  the app;
* on failure answers ``401`` with an RFC 9457 ``application/problem+json`` body
  (``type``, ``title``, ``status``, ``detail``, ``reason`` and, when known,
  ``request_id``) and a ``WWW-Authenticate`` challenge (RFC 6750 §3): ``Bearer``
  when no credential was sent, ``Bearer error="invalid_token",
  error_description="<reason>"`` when one was refused. A websocket is closed with
  code 1008 before it is accepted.

The credential comes from ``Authorization: Bearer <token>`` or, with
``header="x-auth-assertion"``, from the raw ``X-Auth-Assertion`` header. A request
that repeats the header is refused as ``malformed``: two credentials are a sign that
a proxy appended instead of replacing.

``exclude_paths`` entries match a path exactly or as a ``/``-separated prefix:
``"/health"`` excludes ``/health`` and ``/health/ready`` but not ``/healthz``.
Other scope types (``lifespan``) pass through untouched.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any, Final, Literal, Protocol

import msgspec

from .tokens import BaseClaims, TokenError

__all__ = ("CLAIMS_STATE_KEY", "SupportsVerify", "VerifierMiddleware")

CLAIMS_STATE_KEY: Final = "auth_claims"
"""Key of the verified claims in ``scope["state"]``."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class SupportsVerify(Protocol):
    """Anything with ``async verify(token) -> claims``: ``TokenVerifier``, ``AssertionVerifier``."""

    async def verify(self, token: str) -> BaseClaims:
        """Return the claims of a valid token, raise ``TokenError`` otherwise."""
        ...


class _Problem(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    reason: str
    request_id: str | None = None


class VerifierMiddleware:
    """ASGI middleware that verifies a bearer token or an ``X-Auth-Assertion``.

    Args:
        app: The ASGI app to protect.
        verifier: What checks the token (see :class:`SupportsVerify`).
        header: ``"authorization"`` for ``Bearer`` tokens, ``"x-auth-assertion"``
            for assertions signed by the auth service.
        exclude_paths: Paths (and ``/``-separated sub-paths) left unauthenticated.
        realm: Optional ``realm`` parameter of the ``WWW-Authenticate`` challenge.
    """

    def __init__(
        self,
        app: ASGIApp,
        verifier: SupportsVerify,
        *,
        header: Literal["authorization", "x-auth-assertion"] = "authorization",
        exclude_paths: Collection[str] = (),
        realm: str | None = None,
    ) -> None:
        if header not in ("authorization", "x-auth-assertion"):
            raise ValueError(f"header must be authorization or x-auth-assertion, not {header!r}")
        self.app = app
        self.verifier = verifier
        self.header = header
        self._header_name = header.encode("latin-1")
        self._exact = frozenset(exclude_paths)
        self._prefixes = tuple(p.rstrip("/") + "/" for p in exclude_paths)
        self._challenge = f'Bearer realm="{realm}"' if realm else "Bearer"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Verify, then call the app or refuse the connection."""
        if scope["type"] not in ("http", "websocket") or self._excluded(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            token = self._credential(scope)
            if token is None:
                await self._refuse(scope, receive, send, None)
                return
            claims = await self.verifier.verify(token)
        except TokenError as exc:
            await self._refuse(scope, receive, send, exc)
            return
        scope.setdefault("state", {})[CLAIMS_STATE_KEY] = claims
        await self.app(scope, receive, send)

    def _excluded(self, path: str) -> bool:
        return path in self._exact or path.startswith(self._prefixes)

    def _credential(self, scope: Scope) -> str | None:
        values = [v for k, v in scope["headers"] if k.lower() == self._header_name]
        if not values:
            return None
        if len(values) > 1:
            raise TokenError("malformed", f"more than one {self.header} header")
        value = values[0].decode("latin-1").strip()
        if self.header == "x-auth-assertion":
            return value or None
        scheme, _, token = value.partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token else None

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, error: TokenError | None
    ) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
            return
        if error is None:
            challenge = self._challenge
            reason, detail = "missing_token", "a bearer token is required"
        else:
            challenge = self._challenge + (", " if self._challenge != "Bearer" else " ")
            challenge += f'error="invalid_token", error_description="{error.reason}"'
            reason, detail = error.reason, error.description
        problem = _Problem(
            type="about:blank",
            title="Unauthorized",
            status=401,
            detail=detail,
            reason=reason,
            request_id=_request_id(scope),
        )
        body = msgspec.json.encode(problem)
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", challenge.encode("latin-1")),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _request_id(scope: Scope) -> str | None:
    state_id = scope.get("state", {}).get("request_id")
    if isinstance(state_id, str):
        return state_id
    for key, value in scope["headers"]:
        if key.lower() == b"x-request-id":
            rid = value.decode("latin-1")
            return rid if _REQUEST_ID.fullmatch(rid) else None
    return None
