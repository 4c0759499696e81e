"""The naive baseline of `make bench`: what teams write today for an ``auth_request`` check.

A FastAPI endpoint takes the bearer token and calls python-keycloak's
``KeycloakOpenID.decode_token(token, key=..., validate=True)`` on every request,
then checks the audience. The realm's signing keys are downloaded once at
startup and passed in as ``key=`` (a jwcrypto ``JWKSet``), so no request touches
the network (KEYCLOAK.md §6.4): the per-request cost is jwcrypto's JWT parsing,
the RS256 signature check and the claim checks, plus FastAPI. No cache.

``--handler async`` (default) declares the endpoint ``async def``; ``--handler sync``
declares it ``def``, which FastAPI runs in its thread pool: both shapes are common.

Served like ``auth-service serve``: uvicorn, uvloop + httptools, one worker,
no access log (bench/run.py pins it to one core with ``taskset``).

Usage::

    python bench/baseline_app.py --issuer http://127.0.0.1:8081/realms/acme \\
        --audiences orders-api,auth-service --port 8001
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jwcrypto import jwk
from keycloak import KeycloakOpenID

ISSUER = "http://127.0.0.1:8081/realms/acme"
AUDIENCES = frozenset({"orders-api", "auth-service"})
CLIENT_ID = "auth-service"


class Realm:
    """The KeycloakOpenID client and the realm keys, loaded once at startup."""

    openid: KeycloakOpenID
    keys: jwk.JWKSet


realm = Realm()


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    server_url, _, realm_name = ISSUER.rpartition("/realms/")
    realm.openid = KeycloakOpenID(
        server_url=server_url + "/", realm_name=realm_name, client_id=CLIENT_ID
    )
    keys = jwk.JWKSet()
    for cert in realm.openid.certs()["keys"]:  # one GET .../certs, at startup only
        if cert.get("use", "sig") == "sig":
            keys.add(jwk.JWK(**cert))
    realm.keys = keys
    yield


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
bearer = HTTPBearer(auto_error=False)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer realm="baseline"'})


def check(credentials: HTTPAuthorizationCredentials | None) -> Response:
    """200 with ``X-Auth-User`` for a valid token, 401 otherwise."""
    if credentials is None:
        raise _unauthorized("a bearer token is required")
    try:
        claims = realm.openid.decode_token(
            credentials.credentials,
            key=realm.keys,
            validate=True,
            check_claims={"iss": ISSUER, "exp": None},
        )
    except Exception as exc:  # jwcrypto raises many types; any of them means "no"
        raise _unauthorized(f"invalid token: {exc.__class__.__name__}") from None
    aud = claims.get("aud")
    audiences = {aud} if isinstance(aud, str) else set(aud or ())
    if AUDIENCES.isdisjoint(audiences) and claims.get("azp") not in AUDIENCES:
        raise _unauthorized("token is for another audience")
    return Response(
        status_code=200,
        headers={
            "X-Auth-User": str(claims.get("preferred_username", "")),
            "X-Auth-Subject": str(claims.get("sub", "")),
        },
    )


async def auth_request_async(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Response:
    """``async def``: the check runs on the event loop."""
    return check(credentials)


def auth_request_sync(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Response:
    """Plain ``def``: FastAPI runs it in its thread pool (the most common tutorial shape)."""
    return check(credentials)


HANDLERS = {"async": auth_request_async, "sync": auth_request_sync}


def main() -> None:
    global ISSUER, AUDIENCES
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issuer", default=ISSUER)
    parser.add_argument("--audiences", default=",".join(sorted(AUDIENCES)))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--handler",
        choices=sorted(HANDLERS),
        default="async",
        help="async: `async def` endpoint; sync: `def` endpoint (run in the thread pool)",
    )
    args = parser.parse_args()
    app.add_api_route("/authz/auth-request", HANDLERS[args.handler], methods=["GET"])
    ISSUER = args.issuer
    AUDIENCES = frozenset(a for a in args.audiences.split(",") if a)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
