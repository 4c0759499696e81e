"""Demo downstream service: shows what the gateway passed on (CONTRACT §11).

A raw ASGI app whose only dependency is the verifier library's decoder of the
identity headers (`auth_service.verifier.headers`, installed with the service).
Every request (any method, any path) is answered with the identity headers
(``X-Auth-*``) as received and decoded (items of comma-separated headers are
percent-encoded, CONTRACT §4: a role named ``a,b`` is one role), the request id
and all other request headers it received: as an HTML page for browsers, as
JSON when ``Accept`` asks for ``application/json``. The request id is echoed in
the ``X-Request-ID`` response header.

It trusts the plain headers only because it is a demo: a real service
verifies ``X-Auth-Assertion`` (``auth_service.verifier``) or only accepts
connections from the gateway.

Run it: ``uvicorn --app-dir deploy/demo app:app --port 8082``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from auth_service.verifier.headers import read_identity

__all__ = ("app", "render_html", "summary")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

IDENTITY_PREFIX = "x-auth-"


def decoded_identity(scope: Scope) -> dict[str, Any]:
    """The identity headers decoded by the verifier library, or why they cannot be."""
    try:
        found = read_identity(scope.get("headers", ()))
    except ValueError as exc:
        return {"error": str(exc)}
    return {
        "subject": found.subject,
        "username": found.username,
        "email": found.email,
        "roles": list(found.roles),
        "mfa": found.mfa,
        "attributes": {name: list(items) for name, items in found.attributes.items()},
    }


def summary(scope: Scope) -> dict[str, Any]:
    """What the page shows: method, path, request id, identity (raw and decoded), all headers.

    Repeated headers are joined with ``", "`` so a duplicated identity header
    would be visible instead of hidden (and the decoded identity says so).
    """
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    query = scope.get("query_string", b"").decode("latin-1")
    return {
        "method": scope.get("method", "GET"),
        "path": scope.get("path", "/") + (f"?{query}" if query else ""),
        "request_id": headers.get("x-request-id"),
        "identity": {k: v for k, v in sorted(headers.items()) if k.startswith(IDENTITY_PREFIX)},
        "decoded": decoded_identity(scope),
        "headers": dict(sorted(headers.items())),
    }


def _rows(items: dict[str, str]) -> str:
    if not items:
        return '<tr><td colspan="2"><em>none</em></td></tr>'
    return "".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>"
        for k, v in items.items()
    )


def _shown(value: Any) -> str:
    if value is None or isinstance(value, str):
        return "" if value is None else value
    return json.dumps(value, ensure_ascii=False)


def render_html(data: dict[str, Any]) -> str:
    """The HTML page for ``data`` (from `summary`); every value is escaped."""
    user = data["identity"].get("x-auth-user")
    greeting = f"Signed in as {html.escape(user)}" if user else "Not signed in (anonymous rule)"
    rid = html.escape(data["request_id"] or "(none)")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>auth-service demo</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; max-width: 60rem; }}
table {{ border-collapse: collapse; margin-bottom: 1.5rem; width: 100%; }}
th, td {{ border: 1px solid #ccc; padding: .3rem .5rem; text-align: left;
          vertical-align: top; }}
th {{ width: 14rem; background: #f4f4f4; }}
code {{ word-break: break-all; }}
</style></head>
<body>
<h1>Demo downstream service</h1>
<p><strong>{greeting}</strong> &middot; <a href="/auth/logout?rd=/">log out</a></p>
<p>{html.escape(data["method"])} <code>{html.escape(data["path"])}</code></p>
<h2>Request id</h2>
<p><code id="request-id">{rid}</code></p>
<h2>Identity headers from the gateway</h2>
<table id="identity">{_rows(data["identity"])}</table>
<h2>Identity, decoded</h2>
<table id="decoded">{_rows({k: _shown(v) for k, v in data["decoded"].items()})}</table>
<h2>All request headers</h2>
<table id="headers">{_rows(data["headers"])}</table>
</body></html>
"""


def _wants_json(headers: dict[str, str]) -> bool:
    accept = headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI entry point (``lifespan`` is acknowledged, ``websocket`` refused)."""
    if scope["type"] == "lifespan":
        while True:
            kind = (await receive())["type"].removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the request body; the demo does not use it
        message = await receive()
        more = message.get("more_body", False)
    data = summary(scope)
    if _wants_json(data["headers"]):
        body = json.dumps(data, indent=2).encode()
        content_type = b"application/json"
    else:
        body = render_html(data).encode()
        content_type = b"text/html; charset=utf-8"
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if data["request_id"]:
        headers.append((b"x-request-id", data["request_id"].encode("latin-1")))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
