"""`RealmJWTVerifier`: ID and logout tokens get exactly the access-token JWS checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from auth_service.verifier import JWKSCache, RealmJWTVerifier, TokenError

from .support import (
    AUDIENCE,
    ISSUER,
    JWKS_URI,
    FakeClock,
    JWKSEndpoint,
    access_claims,
    ec_key,
    forge,
    make_verifier,
    rsa_key,
)

CLIENT = "auth-service"
LOGOUT_TYPES = ("logout+jwt", "JWT")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def cache(clock: FakeClock) -> AsyncIterator[JWKSCache]:
    endpoint = JWKSEndpoint()
    endpoint.serve(rsa_key(), ec_key())
    async with endpoint.client() as http:
        yield JWKSCache(JWKS_URI, http, clock=clock)


def realm(cache: JWKSCache, clock: FakeClock, **options: Any) -> RealmJWTVerifier:
    return RealmJWTVerifier(issuer=ISSUER, audience=CLIENT, keys=cache, clock=clock, **options)


def id_claims(**changes: Any) -> dict[str, Any]:
    """An ID-token payload for ``CLIENT``; ``None`` drops a claim."""
    claims = {**access_claims(), "aud": CLIENT, "typ": "ID", "nonce": "n-1", **changes}
    return {name: value for name, value in claims.items() if value is not None}


def signed(claims: dict[str, Any], **header: Any) -> str:
    """Signed by the published RSA key with exactly ``header`` added (no default ``typ``)."""
    key = rsa_key()
    return forge({"alg": key.alg, "kid": key.kid, **header}, claims, key)


async def refused(verifier: Any, token: str) -> str:
    with pytest.raises(TokenError) as caught:
        await verifier.verify(token)
    return caught.value.reason


async def test_returns_the_raw_claims(cache: JWKSCache, clock: FakeClock) -> None:
    """A valid ID token yields its claims as a dict, ``typ`` ``ID`` included."""
    claims = await realm(cache, clock).verify(signed(id_claims()))
    assert claims["typ"] == "ID" and claims["nonce"] == "n-1"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"b64": False}, "forbidden_header"),
        ({"jku": "https://evil.example/jwks"}, "forbidden_header"),
        ({"crit": ["exp"], "exp": 1}, "forbidden_header"),
        ({"x5c": ["MII"]}, "forbidden_header"),
    ],
)
async def test_refuses_the_same_headers_as_access_tokens(
    cache: JWKSCache, clock: FakeClock, header: dict[str, Any], reason: str
) -> None:
    """One header rule for every realm token: ``b64`` too (it used to pass for ID tokens)."""
    assert await refused(realm(cache, clock), signed(id_claims(), **header)) == reason
    access = signed(access_claims(), **header)
    assert await refused(make_verifier(cache, clock), access) == reason


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": None}, "missing_claim"),
        ({"aud": AUDIENCE}, "wrong_audience"),
        ({"aud": None, "azp": CLIENT}, "wrong_audience"),
        ({"iss": ISSUER + "/"}, "wrong_issuer"),
    ],
)
async def test_claim_rules(
    cache: JWKSCache, clock: FakeClock, changes: dict[str, Any], reason: str
) -> None:
    """``exp`` required; ``aud`` must name this client (``azp`` is not enough); exact ``iss``."""
    assert await refused(realm(cache, clock), signed(id_claims(**changes))) == reason


async def test_header_types(cache: JWKSCache, clock: FakeClock) -> None:
    """With ``header_types`` the header ``typ`` must be one of them (case-insensitive)."""
    logout = realm(cache, clock, header_types=LOGOUT_TYPES)
    claims = id_claims(typ="Logout", nonce=None)
    assert (await logout.verify(signed(claims, typ="Logout+JWT")))["typ"] == "Logout"
    assert (await logout.verify(signed(claims, typ="JWT")))["typ"] == "Logout"
    assert await refused(logout, signed(claims, typ="at+jwt")) == "wrong_token_type"
    assert await refused(logout, signed(claims)) == "wrong_token_type"
    assert (await realm(cache, clock).verify(signed(claims)))["typ"] == "Logout"
