"""A downstream app built only on the verifier library, fed by the real service's assertions."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from litestar import Litestar, Request, get
from litestar.testing import AsyncTestClient

from auth_service import verifier as av
from tests.fakes.keycloak import FakeKeycloak
from tests.integration.forward_auth.conftest import auth_request
from tests.support.tokens import b64json, parts


def downstream(jwks: bytes, *, audience: str, clock: Callable[[], float] = time.time) -> Litestar:
    """The README's downstream example, with the JWKS served from the auth service's answer."""
    http = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, content=jwks))
    )
    keys = av.JWKSCache("http://auth.test/.well-known/jwks.json", http)
    assertions = av.AssertionVerifier(
        issuer="http://auth.test", audience=audience, keys=keys, clock=clock
    )

    @get("/orders", guards=[av.requires_realm_role("orders-writer")])
    async def orders(request: Request) -> dict[str, str | None]:  # type: ignore[type-arg]
        return {"user": request.state.auth_claims.sub}

    return Litestar(
        [orders], middleware=[av.verifier_middleware(assertions, header="x-auth-assertion")]
    )


async def test_downstream_accepts_good_and_refuses_bad_assertions(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """Good → 200; tampered, expired and other-audience assertions → 401."""
    token = idp.mint_access_token("alice")
    r = await auth_request(service, token=token, url="https://orders.test/orders")
    assert r.status_code == 200
    assertion = r.headers["x-auth-assertion"]
    jwks = (await service.get("/.well-known/jwks.json")).content
    sub = idp.verify(token)["sub"]

    async def call(app: Litestar, value: str) -> httpx.Response:
        async with AsyncTestClient(app) as client:
            return await client.get("/orders", headers={"X-Auth-Assertion": value})

    good = await call(downstream(jwks, audience="orders.test"), assertion)
    assert good.status_code == 200
    assert good.json() == {"user": sub}

    header, payload, sig = parts(assertion)
    tampered = f"{assertion.split('.')[0]}.{b64json({**payload, 'sub': 'someone-else'})}.{sig}"
    assert (await call(downstream(jwks, audience="orders.test"), tampered)).status_code == 401

    late = lambda: time.time() + 3600  # noqa: E731
    assert (
        await call(downstream(jwks, audience="orders.test", clock=late), assertion)
    ).status_code == 401

    assert (await call(downstream(jwks, audience="billing.test"), assertion)).status_code == 401
