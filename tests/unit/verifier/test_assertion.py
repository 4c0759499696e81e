"""AssertionVerifier: the X-Auth-Assertion a downstream service receives from the gateway."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from auth_service.verifier import AssertionClaims, AssertionVerifier, JWKSCache, TokenError

from .support import (
    ASSERTION_JWKS_URI,
    AUTH_URL,
    DOWNSTREAM,
    NOW,
    FakeClock,
    JWKSEndpoint,
    access_claims,
    assertion_claims,
    ec_key,
    make_assertion_verifier,
    rsa_key,
    sign,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def endpoint() -> JWKSEndpoint:
    endpoint = JWKSEndpoint()
    endpoint.serve(ec_key("svc-1"), rsa_key())
    return endpoint


@pytest.fixture
async def http(endpoint: JWKSEndpoint) -> AsyncIterator[httpx.AsyncClient]:
    async with endpoint.client() as client:
        yield client


@pytest.fixture
def verifier(http: httpx.AsyncClient, clock: FakeClock) -> AssertionVerifier:
    return make_assertion_verifier(JWKSCache(ASSERTION_JWKS_URI, http, clock=clock), clock)


async def reason(verifier: AssertionVerifier, token: str) -> str:
    """The reason ``verifier`` refuses ``token`` (fails the test if it is accepted)."""
    with pytest.raises(TokenError) as caught:
        await verifier.verify(token)
    return caught.value.reason


async def test_good_assertion(verifier: AssertionVerifier) -> None:
    """A fresh ES256 assertion for this host verifies and exposes roles, amr and attributes."""
    claims = await verifier.verify(sign(assertion_claims(), ec_key("svc-1")))
    assert isinstance(claims, AssertionClaims)
    assert claims.sub == "5f0c3c1e-8d0a-4f1e-b2a4-1d2c3b4a5e6f"
    assert claims.realm_roles == frozenset({"app-user"})
    assert claims.client_roles == {"acme-api": frozenset({"reader"})}
    assert claims.has_client_role("acme-api", "reader")
    assert claims.amr == frozenset({"pwd", "otp"})
    assert claims.mfa
    assert claims.aud == (DOWNSTREAM,)
    assert (claims.iss, claims.exp, claims.jti) == (AUTH_URL, NOW + 60, "a-1")
    assert claims.attributes({"tenant": "tenant_id"}) == {"tenant": "t-001"}


async def test_without_otp_mfa_is_false(verifier: AssertionVerifier) -> None:
    """``mfa`` is false unless ``amr`` contains ``otp``."""
    claims = await verifier.verify(sign(assertion_claims(amr=["pwd"]), ec_key("svc-1")))
    assert not claims.mfa


async def test_tampered(verifier: AssertionVerifier) -> None:
    """Changing the roles while keeping the signature fails."""
    good = sign(assertion_claims(), ec_key("svc-1"))
    forged = sign(assertion_claims(roles=["admin"]), ec_key("svc-1"))
    header, _, signature = good.split(".")
    token = f"{header}.{forged.split('.')[1]}.{signature}"
    assert await reason(verifier, token) == "bad_signature"


async def test_signed_by_another_key(verifier: AssertionVerifier) -> None:
    """An assertion signed with a key the service did not publish fails, even with its kid."""
    token = sign(assertion_claims(), ec_key("intruder"), kid="svc-1")
    assert await reason(verifier, token) == "bad_signature"


@pytest.mark.parametrize(("late", "ok"), [(4, True), (6, False)])
async def test_expired(verifier: AssertionVerifier, clock: FakeClock, late: int, ok: bool) -> None:
    """Leeway is 5 s: an assertion 4 s past ``exp`` passes, 6 s past is token_expired."""
    token = sign(assertion_claims(), ec_key("svc-1"))
    clock.now = NOW + 60 + late
    if ok:
        await verifier.verify(token)
    else:
        assert await reason(verifier, token) == "token_expired"


@pytest.mark.parametrize(
    "aud", ["billing.example.com", ["billing.example.com"], "ORDERS.example.com", None]
)
async def test_other_audience(verifier: AssertionVerifier, aud: object) -> None:
    """An assertion made for another host (or for none) is wrong_audience."""
    token = sign(assertion_claims(aud=aud), ec_key("svc-1"))
    assert await reason(verifier, token) == "wrong_audience"


async def test_azp_does_not_stand_in_for_aud(verifier: AssertionVerifier) -> None:
    """Unlike access tokens, an ``azp`` naming this host does not replace ``aud``."""
    token = sign(assertion_claims(aud="billing.example.com", azp=DOWNSTREAM), ec_key("svc-1"))
    assert await reason(verifier, token) == "wrong_audience"


async def test_wrong_issuer(verifier: AssertionVerifier) -> None:
    """``iss`` must be the auth service's public URL exactly."""
    token = sign(assertion_claims(iss=AUTH_URL + "/"), ec_key("svc-1"))
    assert await reason(verifier, token) == "wrong_issuer"


async def test_only_es256(verifier: AssertionVerifier) -> None:
    """An RS256 token is refused even when its key is in the JWKS."""
    token = sign(assertion_claims(), rsa_key())
    assert await reason(verifier, token) == "unsupported_alg"


async def test_access_token_is_not_an_assertion(verifier: AssertionVerifier) -> None:
    """A Keycloak access token presented as an assertion fails on issuer and audience."""
    token = sign(access_claims(aud=DOWNSTREAM), ec_key("svc-1"))
    assert await reason(verifier, token) == "wrong_issuer"


async def test_for_service_reads_the_well_known_jwks(
    http: httpx.AsyncClient, endpoint: JWKSEndpoint
) -> None:
    """``for_service`` fetches keys from ``<public URL>/.well-known/jwks.json``."""
    verifier = AssertionVerifier.for_service(AUTH_URL + "/", DOWNSTREAM, http)
    now = int(time.time())
    token = sign(assertion_claims(iss=AUTH_URL + "/", iat=now, exp=now + 60), ec_key("svc-1"))
    claims = await verifier.verify(token)
    assert claims.sub is not None
    assert [str(r.url) for r in endpoint.requests] == [ASSERTION_JWKS_URI]
    assert verifier.keys.jwks_uri == ASSERTION_JWKS_URI
