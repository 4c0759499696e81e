"""Test kit for the verifier: keys, a counting JWKS endpoint, a clock and token forgery.

Plain helpers rather than conftest fixtures, so the suite also runs with
``--noconftest``; each test module turns the ones it needs into fixtures.
RSA generation is slow, so keys are made once per process (``functools.cache``).
"""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Iterable
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey
from joserfc.jws import JWSRegistry

from auth_service.verifier import AssertionVerifier, JWKSCache, TokenVerifier

ISSUER = "https://sso.example.com/realms/acme"
JWKS_URI = f"{ISSUER}/protocol/openid-connect/certs"
AUDIENCE = "acme-api"
NOW = 1_767_225_600.0
AUTH_URL = "https://auth.example.com"
ASSERTION_JWKS_URI = f"{AUTH_URL}/.well-known/jwks.json"
DOWNSTREAM = "orders.example.com"


@functools.cache
def rsa_key(kid: str = "rsa-1") -> RSAKey:
    """A private RS256 signing key, generated once per ``kid``."""
    return RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})


@functools.cache
def ec_key(kid: str = "ec-1") -> ECKey:
    """A private ES256 signing key, generated once per ``kid``."""
    return ECKey.generate_key("P-256", parameters={"kid": kid, "alg": "ES256", "use": "sig"})


@functools.cache
def ps_key(kid: str = "ps-1") -> RSAKey:
    """A private PS256 signing key (an RSA key whose JWK says ``alg: PS256``)."""
    return RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "PS256", "use": "sig"})


def public_jwk(key: Key, **extra: Any) -> dict[str, Any]:
    """The public JWK of ``key`` as a JWKS entry, with ``extra`` members."""
    return {**key.as_dict(private=False), **extra}


class FakeClock:
    """A settable clock usable both as ``time.time`` and ``time.monotonic``."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class JWKSEndpoint:
    """An ``httpx.MockTransport`` handler serving a JWKS and recording each request.

    ``entries`` is served as ``{"keys": entries}`` unless ``body`` is set;
    ``status`` is the answer's status; ``error`` is raised instead of answering.
    """

    def __init__(self, entries: Iterable[dict[str, Any]] = ()) -> None:
        self.entries = list(entries)
        self.body: bytes | None = None
        self.status = 200
        self.error: Exception | None = None
        self.requests: list[httpx.Request] = []

    @property
    def count(self) -> int:
        """Number of requests received."""
        return len(self.requests)

    def serve(self, *keys: Key) -> None:
        """Publish exactly these keys (public parts)."""
        self.entries = [public_jwk(key) for key in keys]
        self.body, self.error, self.status = None, None, 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        body = self.body if self.body is not None else json.dumps({"keys": self.entries}).encode()
        return httpx.Response(self.status, content=body)

    def client(self) -> httpx.AsyncClient:
        """A client whose every request is answered by this endpoint."""
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


def access_claims(**changes: Any) -> dict[str, Any]:
    """A Keycloak-shaped access-token payload valid at ``NOW``; ``None`` drops a claim."""
    claims: dict[str, Any] = {
        "exp": int(NOW) + 300,
        "iat": int(NOW),
        "jti": "onrtro:0b4c9a1e-5a0c-4c1f-9a7e-2f3f1c7d9e11",
        "iss": ISSUER,
        "aud": [AUDIENCE, "account"],
        "sub": "5f0c3c1e-8d0a-4f1e-b2a4-1d2c3b4a5e6f",
        "typ": "Bearer",
        "azp": "acme-web",
        "sid": "3c1f9e0a-7d2b-4c55-9a51-0c8a3e2f1b77",
        "realm_access": {"roles": ["default-roles-acme", "app-user"]},
        "resource_access": {
            "acme-api": {"roles": ["reader"]},
            "account": {"roles": ["view-profile"]},
        },
        "scope": "openid profile email",
        "preferred_username": "alice",
        "email": "alice@example.com",
        "tenant_id": "t-001",
        "address": {"country": "NZ"},
        "department": ["research", "ops"],
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict[str, Any], key: Key, **header: Any) -> str:
    """A JWT over ``claims`` signed by joserfc with ``key`` (``alg`` from the key)."""
    full = {"alg": key.alg, "kid": key.kid, **header}
    registry = JWSRegistry(algorithms=[full["alg"]], strict_check_header=False)
    return jwt.encode(full, claims, key, registry=registry)


def b64(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(
    header: dict[str, Any] | bytes, payload: dict[str, Any] | list[Any] | bytes, key: Key | None
) -> str:
    """Assemble a compact JWS by hand, signed by joserfc's algorithm for ``header["alg"]``.

    Lets a test sign what joserfc's serializer would refuse (``crit``, arrays as payload).
    Without ``key`` the signature part is empty.
    """
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64(head)}.{b64(body)}"
    if key is None:
        return signing_input + "."
    alg = json.loads(head)["alg"]
    return f"{signing_input}.{b64(JWSRegistry.algorithms[alg].sign(signing_input.encode(), key))}"


def make_verifier(cache: JWKSCache, clock: FakeClock, **options: Any) -> TokenVerifier:
    """A ``TokenVerifier`` for the test realm."""
    return TokenVerifier(issuer=ISSUER, audiences=[AUDIENCE], keys=cache, clock=clock, **options)


def make_assertion_verifier(cache: JWKSCache, clock: FakeClock) -> AssertionVerifier:
    """An ``AssertionVerifier`` for ``DOWNSTREAM`` trusting the auth service at ``AUTH_URL``."""
    return AssertionVerifier(issuer=AUTH_URL, audience=DOWNSTREAM, keys=cache, clock=clock)


def assertion_claims(**changes: Any) -> dict[str, Any]:
    """An ``X-Auth-Assertion`` payload (CONTRACT.md §4) valid at ``NOW``."""
    claims: dict[str, Any] = {
        "iss": AUTH_URL,
        "aud": DOWNSTREAM,
        "sub": "5f0c3c1e-8d0a-4f1e-b2a4-1d2c3b4a5e6f",
        "roles": ["app-user"],
        "client_roles": {"acme-api": ["reader"]},
        "amr": ["pwd", "otp"],
        "sid": "3c1f9e0a-7d2b-4c55-9a51-0c8a3e2f1b77",
        "iat": int(NOW),
        "exp": int(NOW) + 60,
        "jti": "a-1",
        "tenant_id": "t-001",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def wall_clock_claims() -> dict[str, Any]:
    """``access_claims`` valid now by the real clock (for tests without a FakeClock)."""
    now = int(time.time())
    return access_claims(iat=now, exp=now + 300)
