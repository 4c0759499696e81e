"""TokenVerifier: every row of "what counts as a valid access token", and the Claims it yields."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from auth_service.verifier import MISSING, Claims, JWKSCache, TokenError, TokenVerifier
from auth_service.verifier import tokens as tokens_module

from .support import (
    AUDIENCE,
    ISSUER,
    JWKS_URI,
    NOW,
    FakeClock,
    JWKSEndpoint,
    access_claims,
    b64,
    ec_key,
    forge,
    make_verifier,
    ps_key,
    rsa_key,
    sign,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def endpoint() -> JWKSEndpoint:
    endpoint = JWKSEndpoint()
    endpoint.serve(rsa_key(), ec_key(), ps_key())
    return endpoint


@pytest.fixture
async def cache(endpoint: JWKSEndpoint, clock: FakeClock) -> AsyncIterator[JWKSCache]:
    async with endpoint.client() as http:
        yield JWKSCache(JWKS_URI, http, clock=clock)


@pytest.fixture
def verifier(cache: JWKSCache, clock: FakeClock) -> TokenVerifier:
    return make_verifier(cache, clock)


async def reason(verifier: TokenVerifier, token: str) -> str:
    """The reason ``verifier`` refuses ``token`` (fails the test if it is accepted)."""
    with pytest.raises(TokenError) as caught:
        await verifier.verify(token)
    return caught.value.reason


class TestAccepted:
    @pytest.mark.parametrize("key", [rsa_key, ec_key, ps_key], ids=["RS256", "ES256", "PS256"])
    async def test_each_allowed_algorithm_verifies(self, verifier: TokenVerifier, key: Any) -> None:
        """RS256, PS256 and ES256 tokens signed by a published key are accepted."""
        claims = await verifier.verify(sign(access_claims(), key()))
        assert claims.sub == "5f0c3c1e-8d0a-4f1e-b2a4-1d2c3b4a5e6f"

    async def test_claims_accessors(self, verifier: TokenVerifier) -> None:
        """Typed accessors are filled from the Keycloak claim layout."""
        claims = await verifier.verify(sign(access_claims(), rsa_key()))
        assert isinstance(claims, Claims)
        assert claims.username == "alice"
        assert claims.email == "alice@example.com"
        assert claims.realm_roles == frozenset({"default-roles-acme", "app-user"})
        assert claims.client_roles == {
            "acme-api": frozenset({"reader"}),
            "account": frozenset({"view-profile"}),
        }
        assert claims.has_client_role("acme-api", "reader")
        assert not claims.has_client_role("other", "reader")
        assert claims.scopes == frozenset({"openid", "profile", "email"})
        assert claims.sid == "3c1f9e0a-7d2b-4c55-9a51-0c8a3e2f1b77"
        assert claims.jti == "onrtro:0b4c9a1e-5a0c-4c1f-9a7e-2f3f1c7d9e11"
        assert (claims.azp, claims.client_id) == ("acme-web", "acme-web")
        assert (claims.exp, claims.iat) == (NOW + 300, NOW)
        assert claims.aud == (AUDIENCE, "account")
        assert claims.iss == ISSUER
        assert claims.raw["tenant_id"] == "t-001"

    async def test_claim_paths_and_attributes(self, verifier: TokenVerifier) -> None:
        """Dotted paths reach nested claims; absent ones are MISSING; ``\\.`` is a literal dot."""
        token = sign(access_claims(**{"x.y": 1, "nothing": None, "empty": None}), rsa_key())
        claims = await verifier.verify(token)
        assert claims.claim("address.country") == "NZ"
        assert claims.claim("realm_access.roles") == ["default-roles-acme", "app-user"]
        assert claims.claim("address.city") is MISSING
        assert claims.claim("tenant_id.deeper") is MISSING
        assert claims.claim("x\\.y") == 1
        assert not MISSING
        assert repr(MISSING) == "MISSING"
        assert claims.attributes(
            {"tenant": "tenant_id", "country": "address.country", "gone": "nope"}
        ) == {"tenant": "t-001", "country": "NZ"}

    async def test_service_account_token(self, verifier: TokenVerifier) -> None:
        """A client_credentials token: string ``aud``; ``client_id`` read from its claim."""
        token = sign(
            access_claims(
                aud=AUDIENCE, client_id="acme-provisioner", azp="acme-provisioner", email=None
            ),
            rsa_key(),
        )
        claims = await verifier.verify(token)
        assert claims.aud == (AUDIENCE,)
        assert claims.client_id == "acme-provisioner"
        assert claims.email is None

    async def test_old_keycloak_client_id_claim(self, verifier: TokenVerifier) -> None:
        """``clientId`` (Keycloak < 26) is the fallback before ``azp``."""
        claims = await verifier.verify(sign(access_claims(clientId="legacy"), rsa_key()))
        assert claims.client_id == "legacy"

    async def test_azp_alone_is_enough(self, verifier: TokenVerifier) -> None:
        """A lightweight token with no ``aud`` passes when ``azp`` is an accepted audience."""
        lightweight = {
            k: v
            for k, v in access_claims(azp=AUDIENCE).items()
            if k in {"exp", "iat", "jti", "iss", "typ", "azp", "sid", "scope"}
        }
        claims = await verifier.verify(sign(lightweight, rsa_key()))
        assert (claims.sub, claims.aud, claims.realm_roles) == (None, (), frozenset())

    @pytest.mark.parametrize("aud", [AUDIENCE, [AUDIENCE], ["account", AUDIENCE]])
    async def test_aud_as_string_or_list(self, verifier: TokenVerifier, aud: object) -> None:
        """``aud`` may be a string or a list containing an accepted audience."""
        await verifier.verify(sign(access_claims(aud=aud, azp="acme-web"), rsa_key()))

    async def test_rotation_needs_one_fetch(
        self, verifier: TokenVerifier, endpoint: JWKSEndpoint, clock: FakeClock
    ) -> None:
        """After Keycloak rotates to a new key, its tokens verify after exactly one download."""
        await verifier.verify(sign(access_claims(), rsa_key()))
        assert endpoint.count == 1
        clock.advance(60)
        endpoint.serve(rsa_key(), rsa_key("rsa-2"))
        token = sign(access_claims(), rsa_key("rsa-2"))
        await verifier.verify(token)
        await verifier.verify(token)
        assert endpoint.count == 2

    async def test_known_keys_work_while_idp_is_down(
        self, verifier: TokenVerifier, endpoint: JWKSEndpoint, clock: FakeClock
    ) -> None:
        """With the JWKS endpoint unreachable, tokens signed by cached keys still verify."""
        await verifier.verify(sign(access_claims(), rsa_key()))
        endpoint.error = httpx.ConnectError("down")
        clock.advance(3600)
        await verifier.verify(sign(access_claims(exp=int(clock.now) + 60), rsa_key()))
        assert endpoint.count == 1

    async def test_verify_with_key_skips_the_lookup(self, verifier: TokenVerifier) -> None:
        """``verify_with_key`` uses the given key and still applies every claim check."""
        token = sign(access_claims(), rsa_key(), kid="whatever")
        assert verifier.verify_with_key(token, rsa_key()).username == "alice"
        with pytest.raises(TokenError) as caught:
            verifier.verify_with_key(sign(access_claims(typ="ID"), rsa_key()), rsa_key())
        assert caught.value.reason == "wrong_token_type"


class TestSignatureAndHeader:
    async def test_alg_none(self, verifier: TokenVerifier) -> None:
        """``alg: none`` is refused, with or without a kid and a signature."""
        assert await reason(verifier, forge({"alg": "none"}, access_claims(), None)) == (
            "unsupported_alg"
        )
        token = forge({"alg": "none", "kid": "rsa-1"}, access_claims(), None) + "c2ln"
        assert await reason(verifier, token) == "unsupported_alg"

    async def test_hs256_signed_with_the_realm_public_key(
        self, verifier: TokenVerifier, cache: JWKSCache, clock: FakeClock
    ) -> None:
        """Key confusion: an HMAC keyed with the RSA public key PEM never verifies."""
        pem = rsa_key().as_pem(private=False)
        signing_input = forge({"alg": "HS256", "kid": "rsa-1"}, access_claims(), None)[:-1]
        mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{b64(mac)}"
        assert await reason(verifier, token) == "unsupported_alg"
        # Even a verifier misconfigured to allow HS256 cannot use an RSA key for it.
        lax = make_verifier(cache, clock, algorithms=["RS256", "HS256"])
        assert await reason(lax, token) == "bad_signature"

    @pytest.mark.parametrize("alg", ["HS512", "RS512", "EdDSA", "ES256K", "rs256", ""])
    async def test_algs_outside_the_allow_list(self, verifier: TokenVerifier, alg: str) -> None:
        """Any other alg, even a real one, is refused before a key is looked up."""
        assert await reason(verifier, forge({"alg": alg, "kid": "rsa-1"}, {}, None)) == (
            "unsupported_alg"
        )

    async def test_unknown_kid(self, verifier: TokenVerifier, endpoint: JWKSEndpoint) -> None:
        """A kid the JWKS does not have is refused after one download."""
        token = sign(access_claims(), rsa_key("rogue"))
        assert await reason(verifier, token) == "unknown_kid"
        assert await reason(verifier, token) == "unknown_kid"
        assert endpoint.count == 1

    async def test_known_kid_wrong_key(self, verifier: TokenVerifier) -> None:
        """A token signed by another key under a published kid fails the signature check."""
        assert await reason(verifier, sign(access_claims(), rsa_key("rogue"), kid="rsa-1")) == (
            "bad_signature"
        )

    async def test_key_type_must_match_alg(self, verifier: TokenVerifier) -> None:
        """An ES256 header naming an RSA key, or PS256 naming an RS256 key, does not verify."""
        assert await reason(verifier, sign(access_claims(), ec_key(), kid="rsa-1")) == (
            "bad_signature"
        )
        assert await reason(verifier, sign(access_claims(), ps_key(), kid="rsa-1")) == (
            "bad_signature"
        )

    async def test_tampered_payload(self, verifier: TokenVerifier) -> None:
        """Swapping in another payload while keeping the old signature fails."""
        header, _, signature = sign(access_claims(), rsa_key()).split(".")
        payload = forge({"alg": "RS256"}, access_claims(realm_access={"roles": ["admin"]}), None)
        token = f"{header}.{payload.split('.')[1]}.{signature}"
        assert await reason(verifier, token) == "bad_signature"

    @pytest.mark.parametrize(
        "extra",
        [
            {"jku": "https://evil.example/jwks"},
            {"x5u": "https://evil.example/cert"},
            {"jwk": {"kty": "oct", "k": "AAAA"}},
            {"x5c": ["MIIB"]},
            {"crit": ["exp"], "exp": 1},
            {"crit": []},
            {"b64": False, "crit": ["b64"]},
        ],
        ids=["jku", "x5u", "jwk", "x5c", "crit", "crit-empty", "b64"],
    )
    async def test_forbidden_header_parameters(
        self, verifier: TokenVerifier, extra: dict[str, Any]
    ) -> None:
        """Headers that name their own key or demand extensions are refused, though signed."""
        token = forge({"alg": "RS256", "kid": "rsa-1", **extra}, access_claims(), rsa_key())
        assert await reason(verifier, token) == "forbidden_header"


class TestRemembered:
    """Header segments and key checks are remembered; answers stay the same."""

    async def test_a_refused_header_is_refused_again_the_same_way(
        self, verifier: TokenVerifier
    ) -> None:
        token = forge({"alg": "RS256", "kid": "rsa-1", "jku": "https://e/"}, access_claims(), None)
        assert [await reason(verifier, token) for _ in range(3)] == ["forbidden_header"] * 3

    async def test_a_known_header_does_not_vouch_for_the_rest(
        self, verifier: TokenVerifier
    ) -> None:
        """Same header as a valid token: a swapped payload still fails, a good token passes."""
        good = sign(access_claims(), rsa_key())
        assert (await verifier.verify(good)).sub == access_claims()["sub"]
        header, _, signature = good.split(".")
        other = forge({"alg": "RS256"}, access_claims(sub="mallory"), None).split(".")[1]
        assert await reason(verifier, f"{header}.{other}.{signature}") == "bad_signature"
        assert await reason(verifier, f"{header}.{other}.") == "bad_signature"
        again = sign(access_claims(jti="second"), rsa_key())
        assert again.split(".")[0] == header
        assert (await verifier.verify(again)).jti == "second"

    async def test_the_memory_is_bounded(self, verifier: TokenVerifier) -> None:
        for i in range(200):
            token = forge({"alg": "RS256", "kid": f"k{i}"}, access_claims(), None)
            assert await reason(verifier, token) == "unknown_kid"
        assert len(verifier._headers) <= tokens_module._MEMO_SIZE


class TestMalformed:
    @pytest.mark.parametrize(
        "token",
        [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "eyJhbGciOiJSUzI1NiJ9.e30",
            "!!!.e30.c2ln",
            "eyJhbGciOiJSUzI1NiJ9=.e30.c2ln",
            b64(b"not json") + ".e30.c2ln",
            b64(b"[1, 2]") + ".e30.c2ln",
            b64(b'"RS256"') + ".e30.c2ln",
            b64(b"{}") + ".e30.c2ln",
            b64(b'{"kid": "rsa-1"}') + ".e30.c2ln",
            b64(b'{"alg": 256, "kid": "rsa-1"}') + ".e30.c2ln",
            b64(b'{"alg": "RS256"}') + ".e30.c2ln",
            b64(b'{"alg": "RS256", "kid": 1}') + ".e30.c2ln",
            b64(b'{"alg": "RS256", "kid": ""}') + ".e30.c2ln",
            b64(b'{"alg": "RS256", "kid": "rsa-1"}') + ".%%%.c2ln",
            "ëyJ.e30.c2ln",
        ],
    )
    async def test_structure(self, verifier: TokenVerifier, token: str) -> None:
        """Wrong part counts, bad base64url, non-object headers, missing alg/kid: malformed."""
        assert await reason(verifier, token) == "malformed"

    async def test_signature_part_that_is_not_base64url(self, verifier: TokenVerifier) -> None:
        """A signature part joserfc cannot decode simply does not verify."""
        header, payload, signature = sign(access_claims(), rsa_key()).split(".")
        assert await reason(verifier, f"{header}.{payload}.{signature}=") == "bad_signature"
        assert await reason(verifier, f"{header}.{payload}.") == "bad_signature"

    @pytest.mark.parametrize("payload", [b"[1, 2, 3]", b"not json", b'"exp"', b"null"])
    async def test_signed_payload_that_is_not_an_object(
        self, verifier: TokenVerifier, payload: bytes
    ) -> None:
        """A correctly signed payload that is not a JSON object is malformed."""
        token = forge({"alg": "RS256", "kid": "rsa-1"}, payload, rsa_key())
        assert await reason(verifier, token) == "malformed"

    @pytest.mark.parametrize(
        ("changes", "expected"),
        [
            ({"exp": None}, "missing_claim"),
            ({"exp": "1767225900"}, "missing_claim"),
            ({"exp": True}, "missing_claim"),
            ({"nbf": "soon"}, "malformed"),
            ({"iat": [1]}, "malformed"),
            ({"aud": 7}, "malformed"),
            ({"aud": [AUDIENCE, 7]}, "malformed"),
        ],
    )
    async def test_claim_types(
        self, verifier: TokenVerifier, changes: dict[str, Any], expected: str
    ) -> None:
        """``exp`` must be a number (missing_claim); other time claims and ``aud`` are typed."""
        assert await reason(verifier, sign(access_claims(**changes), rsa_key())) == expected


class TestSize:
    async def test_garbage_over_16_kib_is_too_large(self, verifier: TokenVerifier) -> None:
        """17 KiB of garbage is refused for its size, not as malformed: size comes first."""
        assert await reason(verifier, "!" * 17 * 1024) == "token_too_large"

    async def test_nothing_is_decoded_for_an_oversized_token(
        self, verifier: TokenVerifier, monkeypatch: pytest.MonkeyPatch, endpoint: JWKSEndpoint
    ) -> None:
        """A validly signed token over 16 KiB is refused without base64 decoding or key lookup."""
        token = sign(access_claims(padding="x" * 16384), rsa_key())

        def must_not_decode(segment: str) -> bytes:
            raise AssertionError("decoded an oversized token")

        monkeypatch.setattr(tokens_module, "_b64url_decode", must_not_decode)
        assert await reason(verifier, token) == "token_too_large"
        assert endpoint.count == 0

    async def test_limit_is_inclusive(self, cache: JWKSCache, clock: FakeClock) -> None:
        """A token of exactly ``max_bytes`` is checked normally; one byte more is refused."""
        token = sign(access_claims(), rsa_key())
        await make_verifier(cache, clock, max_bytes=len(token)).verify(token)
        smaller = make_verifier(cache, clock, max_bytes=len(token) - 1)
        assert await reason(smaller, token) == "token_too_large"


class TestTime:
    @pytest.mark.parametrize(("age", "ok"), [(29, True), (30, True), (31, False)])
    async def test_expiry_leeway(
        self, verifier: TokenVerifier, clock: FakeClock, age: int, ok: bool
    ) -> None:
        """Expired by 29 s (or exactly the 30 s leeway) passes; by 31 s it is token_expired."""
        token = sign(access_claims(exp=int(NOW)), rsa_key())
        clock.now = NOW + age
        if ok:
            await verifier.verify(token)
        else:
            assert await reason(verifier, token) == "token_expired"

    @pytest.mark.parametrize(("ahead", "ok"), [(29, True), (31, False)])
    async def test_not_before_leeway(self, verifier: TokenVerifier, ahead: int, ok: bool) -> None:
        """``nbf`` up to 30 s ahead passes; further ahead is token_not_yet_valid."""
        token = sign(access_claims(nbf=int(NOW) + ahead), rsa_key())
        if ok:
            await verifier.verify(token)
        else:
            assert await reason(verifier, token) == "token_not_yet_valid"

    async def test_issued_in_the_future(self, verifier: TokenVerifier) -> None:
        """``iat`` more than the leeway ahead is iat_in_future."""
        token = sign(access_claims(iat=int(NOW) + 31), rsa_key())
        assert await reason(verifier, token) == "iat_in_future"

    async def test_zero_leeway(self, cache: JWKSCache, clock: FakeClock) -> None:
        """With ``leeway=0`` a token is refused the second after it expires."""
        strict = make_verifier(cache, clock, leeway=0)
        token = sign(access_claims(exp=int(NOW)), rsa_key())
        await strict.verify(token)
        clock.advance(1)
        assert await reason(strict, token) == "token_expired"


class TestIdentity:
    @pytest.mark.parametrize(
        "iss",
        [
            ISSUER + "/",
            "https://SSO.example.com/realms/acme",
            "http://sso.example.com/realms/acme",
            "https://sso.example.com/realms/other",
            None,
            ["https://sso.example.com/realms/acme"],
        ],
    )
    async def test_wrong_issuer(self, verifier: TokenVerifier, iss: object) -> None:
        """``iss`` must equal the issuer exactly: trailing slash, case and scheme all differ."""
        assert await reason(verifier, sign(access_claims(iss=iss), rsa_key())) == "wrong_issuer"

    @pytest.mark.parametrize(
        "changes",
        [
            {"aud": "other-api"},
            {"aud": ["account"]},
            {"aud": []},
            {"aud": None},
            {"aud": "account", "azp": "other-web"},
            {"aud": None, "azp": None},
        ],
    )
    async def test_wrong_audience(self, verifier: TokenVerifier, changes: dict[str, Any]) -> None:
        """Neither an accepted ``aud`` nor an accepted ``azp``: wrong_audience."""
        assert await reason(verifier, sign(access_claims(**changes), rsa_key())) == (
            "wrong_audience"
        )

    @pytest.mark.parametrize("typ", ["ID", "Refresh", "Offline", "Logout", "bearer", None, 1])
    async def test_wrong_token_type(self, verifier: TokenVerifier, typ: object) -> None:
        """ID, refresh, offline and logout tokens (or no ``typ``) are not access tokens."""
        assert await reason(verifier, sign(access_claims(typ=typ), rsa_key())) == (
            "wrong_token_type"
        )


class TestConfiguration:
    @pytest.mark.parametrize(
        "options",
        [
            {"algorithms": ["RS256", "none"]},
            {"algorithms": []},
            {"algorithms": ["XS999"]},
            {"audiences": "acme-api"},
            {"audiences": []},
            {"issuer": ""},
            {"leeway": -1},
            {"max_bytes": 0},
        ],
    )
    def test_unsafe_settings_are_rejected(self, options: dict[str, Any]) -> None:
        """``none``, unknown algorithms, a bare string of audiences and empty values fail fast."""
        settings: dict[str, Any] = {"issuer": ISSUER, "audiences": [AUDIENCE], **options}
        with pytest.raises(ValueError):
            TokenVerifier(keys=JWKSCache(JWKS_URI, httpx.AsyncClient()), **settings)

    def test_error_carries_reason_and_description(self) -> None:
        """TokenError exposes ``reason`` and ``description`` and prints both."""
        error = TokenError("token_expired", "token has expired")
        assert (error.reason, error.description) == ("token_expired", "token has expired")
        assert str(error) == "token_expired: token has expired"
