"""A downstream Litestar service (``pip install 'auth-service-verifier[litestar]'``).

``/gateway/whoami`` is for requests through the gateway (``X-Auth-Assertion``),
``/direct/whoami`` for callers with a Keycloak access token. Both need the realm
role ``app-user``. Run it with any ASGI server, e.g. ``granian --interface asgi
litestar_app:app`` in this folder, with the settings of ``verifiers.py``.
"""

from __future__ import annotations

from litestar import Litestar, Request, get
from verifiers import assertions, identity, tokens

from auth_service import verifier as av

app_users = [av.requires_realm_role("app-user")]
by_assertion = [av.verifier_middleware(assertions, header="x-auth-assertion")]
by_token = [av.verifier_middleware(tokens)]


@get("/gateway/whoami", guards=app_users, middleware=by_assertion)
async def through_gateway(request: Request) -> dict[str, object]:  # type: ignore[type-arg]
    """A request that came through the gateway, verified by its ``X-Auth-Assertion``."""
    return identity(av.claims_of(request))


@get("/direct/whoami", guards=app_users, middleware=by_token)
async def direct(request: Request) -> dict[str, object]:  # type: ignore[type-arg]
    """A direct caller, verified by its Keycloak access token."""
    return identity(av.claims_of(request))


app = Litestar([through_gateway, direct])
