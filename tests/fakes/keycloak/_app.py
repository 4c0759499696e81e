"""A small raw ASGI app: routes ``/realms/{realm}/...`` to the endpoints, applies faults, records
requests, and serves the ``/_standin/...`` control API used when the stand-in runs as a process.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from . import _endpoints as ep
from ._admin import admin_token, handle_admin
from ._http import OAUTH_SERVER_ERROR, Request, Response

if TYPE_CHECKING:
    from ._fake import FakeKeycloak

__all__ = ("ASGIApp", "build_app")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Handler = Callable[["FakeKeycloak", Request], Response | Awaitable[Response]]

_OIDC = "/protocol/openid-connect"
ROUTES: dict[str, tuple[str, frozenset[str], Handler]] = {
    "": ("realm", frozenset({"GET"}), ep.realm_info),
    "/.well-known/openid-configuration": ("discovery", frozenset({"GET"}), ep.discovery),
    f"{_OIDC}/certs": ("jwks", frozenset({"GET"}), ep.jwks),
    f"{_OIDC}/token": ("token", frozenset({"POST"}), ep.token),
    f"{_OIDC}/token/introspect": ("introspect", frozenset({"POST"}), ep.introspect),
    f"{_OIDC}/userinfo": ("userinfo", frozenset({"GET", "POST"}), ep.userinfo),
    f"{_OIDC}/revoke": ("revoke", frozenset({"POST"}), ep.revoke),
    f"{_OIDC}/logout": ("logout", frozenset({"GET", "POST"}), ep.logout),
    f"{_OIDC}/auth": ("auth", frozenset({"GET", "POST"}), ep.auth),
    "/login-actions/authenticate": ("auth", frozenset({"POST"}), ep.auth),
}
"""Path below ``/realms/{realm}`` → (endpoint name, methods, handler)."""

_JUNK_JWKS = b'{"keys":[{"kid":"junk","kty":"RSA","alg":"RS256","use":"sig","n":"%%%","e":"?"}]}'
_GARBAGE = b"<html><body>502 Bad Gateway</body></html>\x00{not json"
_HANG_POLL = 0.05
_DROPPED = Response(499)
"""Sentinel: the client went away while the request hung; send nothing."""


async def _read(scope: Scope, receive: Receive) -> Request:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    query = parse_qs(scope.get("query_string", b"").decode(), keep_blank_values=True)
    return Request(scope["method"], scope["path"], query, headers, b"".join(chunks))


async def _send(send: Send, response: Response) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _faulted(fake: FakeKeycloak, endpoint: str, receive: Receive) -> Response | None:
    """Apply the endpoint's fault: a replacement response, or ``None`` to answer normally.

    A hanging request is released when the fault is cleared (it then answers normally) or
    dropped without an answer when the client disconnects."""
    mode, delay = fake.fault_for(endpoint)
    if mode == "slow":
        await asyncio.sleep(delay)
    elif mode == "hang":
        disconnected = asyncio.ensure_future(receive())  # the body was read: next is disconnect
        try:
            while fake.fault_for(endpoint)[0] == "hang":
                done, _ = await asyncio.wait({disconnected}, timeout=_HANG_POLL)
                if done:
                    return _DROPPED
        finally:
            disconnected.cancel()
    elif mode == "error500":
        return Response.json(OAUTH_SERVER_ERROR, 500)
    elif mode == "garbage":
        body = _JUNK_JWKS if endpoint == "jwks" else _GARBAGE
        return Response(200, body, [("content-type", "application/json")])
    return None


async def _dispatch(fake: FakeKeycloak, req: Request, receive: Receive) -> Response:
    if req.path.startswith("/_standin/"):
        return await _control(fake, req)
    if req.path.startswith("/admin/") or req.path == f"/realms/master{_OIDC}/token":
        admin = req.path.startswith("/admin/")
        with fake._lock:
            fake.requests["admin" if admin else "admin-token"] += 1
            if req.method == "POST" and not admin:
                return admin_token(fake, req)
            if admin:
                return handle_admin(fake, req)
        return Response(405, b"", [("allow", "POST")])
    prefix = f"/realms/{fake.realm}"
    if req.path == prefix or req.path.startswith(prefix + "/"):
        route = ROUTES.get(req.path[len(prefix) :].rstrip("/"))
    elif req.path.startswith("/realms/"):
        return Response.json({"error": "Realm does not exist"}, 404)
    else:
        route = None
    if route is None:
        return Response.json({"error": "Unable to find matching target resource method"}, 404)
    endpoint, methods, handler = route
    with fake._lock:
        fake.requests[endpoint] += 1
        fake.request_log.append((endpoint, dict(req.headers)))
    if req.method not in methods:
        allow = ", ".join(sorted(methods))
        return Response(405, b"", [("allow", allow)])
    replacement = await _faulted(fake, endpoint, receive)
    if replacement is not None:
        return replacement
    result = handler(fake, req)
    return await result if inspect.isawaitable(result) else result


async def _control(fake: FakeKeycloak, req: Request) -> Response:
    """``/_standin/*``: drive the stand-in from another process (``make dev``, e2e tests)."""
    action = (req.method, req.path.removeprefix("/_standin/").rstrip("/"))
    try:
        data = req.json() if req.method in ("POST", "PUT") else {}
        if action == ("POST", "rotate-keys"):
            return Response.json({"kid": fake.rotate_keys()})
        if action == ("POST", "faults"):
            fake.set_fault(data["endpoint"], data["mode"], delay=float(data.get("delay", 2.0)))
            return Response.empty()
        if action == ("DELETE", "faults"):
            fake.clear_faults()
            return Response.empty()
        if action == ("GET", "requests"):
            return Response.json(dict(fake.requests))
        if action == ("POST", "mint"):
            return Response.json({"access_token": fake.mint_access_token(**data)})
        if action == ("POST", "end-session"):
            deliveries = await fake.end_session(data["sid"])
            return Response.json({"deliveries": [d.status_code for d in deliveries]})
        if action == ("POST", "logout-user"):
            deliveries = await fake.admin_logout_user(data["username"])
            return Response.json({"deliveries": [d.status_code for d in deliveries]})
        if action == ("GET", "sessions"):
            username = req.param("username")
            rows = [
                {"sid": s.sid, "username": s.username, "clients": sorted(s.clients)}
                for s in list(fake.sessions.values())
                if s.active and (username is None or s.username == username)
            ]
            return Response.json(rows)
        if action == ("GET", "deliveries"):
            rows = [vars(d) for d in fake.backchannel_deliveries]
            return Response.json(rows)
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        return Response.json({"error": "bad_request", "detail": str(exc)}, 400)
    return Response.json({"error": "not_found"}, 404)


def build_app(fake: FakeKeycloak) -> ASGIApp:
    """The ASGI callable serving ``fake``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"].removeprefix("lifespan.")
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        if scope["type"] != "http":
            return
        req = await _read(scope, receive)
        try:
            response = await _dispatch(fake, req, receive)
        except Exception:  # an unexpected bug in the stand-in: answer like Keycloak would
            await _send(send, Response.json(OAUTH_SERVER_ERROR, 500))
            raise
        if response is not _DROPPED:
            await _send(send, response)

    return app
