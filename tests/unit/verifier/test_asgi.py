"""VerifierMiddleware on a bare ASGI app: 401 problem bodies, claims in scope state, exclusions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest

from auth_service.verifier import CLAIMS_STATE_KEY, JWKSCache, VerifierMiddleware

from .support import (
    ASSERTION_JWKS_URI,
    JWKS_URI,
    FakeClock,
    JWKSEndpoint,
    access_claims,
    assertion_claims,
    ec_key,
    make_assertion_verifier,
    make_verifier,
    rsa_key,
    sign,
)

GOOD = sign(access_claims(), rsa_key())
EXPIRED = sign(access_claims(exp=1), rsa_key())


async def echo(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """A tiny app answering with the subject it found in the scope state."""
    claims = scope.get("state", {}).get(CLAIMS_STATE_KEY)
    body = json.dumps({"sub": claims.sub if claims else None}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def cache() -> AsyncIterator[JWKSCache]:
    endpoint = JWKSEndpoint()
    endpoint.serve(rsa_key(), ec_key("svc-1"))
    async with endpoint.client() as http:
        yield JWKSCache(JWKS_URI, http)


def client(app: VerifierMiddleware) -> httpx.AsyncClient:
    """An HTTP client calling ``app`` in-process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


@pytest.fixture
async def http(cache: JWKSCache) -> AsyncIterator[httpx.AsyncClient]:
    app = VerifierMiddleware(
        echo, make_verifier(cache, FakeClock()), exclude_paths=["/health", "/public/"]
    )
    async with client(app) as http:
        yield http


async def test_valid_token_reaches_the_app_with_claims(http: httpx.AsyncClient) -> None:
    """A good bearer token passes and the app finds Claims under ``state["auth_claims"]``."""
    response = await http.get("/orders", headers={"Authorization": f"Bearer {GOOD}"})
    assert response.status_code == 200
    assert response.json() == {"sub": "5f0c3c1e-8d0a-4f1e-b2a4-1d2c3b4a5e6f"}


async def test_scheme_is_case_insensitive(http: httpx.AsyncClient) -> None:
    """``bearer`` works as well as ``Bearer`` (RFC 7235 schemes are case-insensitive)."""
    response = await http.get("/orders", headers={"Authorization": f"bearer {GOOD}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Basic dTpw"}, {"Authorization": "Bearer "}]
)
async def test_missing_token(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """Without a bearer credential: 401, a bare ``Bearer`` challenge, reason missing_token."""
    response = await http.get("/orders", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["reason"] == "missing_token"


async def test_invalid_token_problem_response(http: httpx.AsyncClient) -> None:
    """A refused token gives an RFC 9457 body and an RFC 6750 invalid_token challenge."""
    response = await http.get(
        "/orders", headers={"Authorization": f"Bearer {EXPIRED}", "X-Request-ID": "req-42"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="token_expired"'
    )
    assert response.json() == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "token has expired",
        "reason": "token_expired",
        "request_id": "req-42",
    }
    assert EXPIRED not in response.text


async def test_unsafe_request_id_is_not_echoed(http: httpx.AsyncClient) -> None:
    """A request id with characters outside the safe set is left out of the body."""
    response = await http.get("/orders", headers={"X-Request-ID": "<script>"})
    assert "request_id" not in response.json()


async def test_repeated_header_is_refused(http: httpx.AsyncClient) -> None:
    """Two Authorization headers are refused as malformed, even if one is valid."""
    headers = [("Authorization", f"Bearer {GOOD}"), ("Authorization", f"Bearer {GOOD}")]
    response = await http.get("/orders", headers=headers)
    assert response.status_code == 401
    assert response.json()["reason"] == "malformed"


@pytest.mark.parametrize(
    ("path", "status"),
    [("/health", 200), ("/health/ready", 200), ("/public/x", 200), ("/healthz", 401), ("/", 401)],
)
async def test_exclude_paths(http: httpx.AsyncClient, path: str, status: int) -> None:
    """Excluded paths match exactly or as ``/``-separated prefixes, nothing else."""
    assert (await http.get(path)).status_code == status


async def test_realm_in_challenge(cache: JWKSCache) -> None:
    """With ``realm`` set, both challenges name it first."""
    app = VerifierMiddleware(echo, make_verifier(cache, FakeClock()), realm="auth-service")
    async with client(app) as http:
        missing = await http.get("/")
        invalid = await http.get("/", headers={"Authorization": "Bearer x.y.z"})
    assert missing.headers["www-authenticate"] == 'Bearer realm="auth-service"'
    assert invalid.headers["www-authenticate"] == (
        'Bearer realm="auth-service", error="invalid_token", error_description="malformed"'
    )


async def test_assertion_header_mode() -> None:
    """With ``header="x-auth-assertion"`` the raw header value is verified as an assertion."""
    endpoint = JWKSEndpoint()
    endpoint.serve(ec_key("svc-1"))
    async with endpoint.client() as keys_http:
        verifier = make_assertion_verifier(JWKSCache(ASSERTION_JWKS_URI, keys_http), FakeClock())
        app = VerifierMiddleware(echo, verifier, header="x-auth-assertion")
        async with client(app) as http:
            ok = await http.get(
                "/", headers={"X-Auth-Assertion": sign(assertion_claims(), ec_key("svc-1"))}
            )
            bearer = await http.get("/", headers={"Authorization": f"Bearer {GOOD}"})
            other = await http.get(
                "/",
                headers={
                    "X-Auth-Assertion": sign(assertion_claims(aud="x.example"), ec_key("svc-1"))
                },
            )
    assert ok.status_code == 200
    assert bearer.status_code == 401
    assert other.json()["reason"] == "wrong_audience"


def test_unknown_header_choice_is_rejected(cache: JWKSCache) -> None:
    """Only the two documented credential headers can be configured."""
    with pytest.raises(ValueError):
        VerifierMiddleware(echo, make_verifier(cache, FakeClock()), header="cookie")  # type: ignore[arg-type]


async def test_lifespan_passes_through(cache: JWKSCache) -> None:
    """Non-HTTP scopes such as ``lifespan`` reach the app untouched."""
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    middleware = VerifierMiddleware(app, make_verifier(cache, FakeClock()))
    await middleware({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]


async def test_websocket_without_token_is_closed(cache: JWKSCache) -> None:
    """A websocket without a valid token is closed with 1008 before the app sees it."""
    reached: list[bool] = []
    sent: list[MutableMapping[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    middleware = VerifierMiddleware(app, make_verifier(cache, FakeClock()))
    scope = {"type": "websocket", "path": "/ws", "headers": []}
    await middleware(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert reached == []
