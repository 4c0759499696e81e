"""A downstream service as a bare ASGI app: the verifier needs no framework.

``/gateway/...`` is for requests through the gateway (``X-Auth-Assertion``),
``/direct/...`` for callers with a Keycloak access token; anything unverified
gets ``401`` with a problem+json body before this code runs. Run it with any
ASGI server, e.g. ``granian --interface asgi asgi_app:app`` in this folder.
"""

from __future__ import annotations

from typing import Any

import msgspec
from verifiers import assertions, identity, tokens

from auth_service import verifier as av


async def whoami(scope: Any, receive: Any, send: Any) -> None:
    """Answer with the verified caller (the middleware put the claims in the scope)."""
    body = msgspec.json.encode(identity(scope["state"][av.CLAIMS_STATE_KEY]))
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


gateway = av.VerifierMiddleware(whoami, assertions, header="x-auth-assertion")
direct = av.VerifierMiddleware(whoami, tokens)


async def app(scope: Any, receive: Any, send: Any) -> None:
    """Route by path prefix; answer the server's lifespan messages."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["path"].startswith("/gateway/"):
        await gateway(scope, receive, send)
    else:
        await direct(scope, receive, send)
