"""The Keycloak stand-in speaks Keycloak's wire formats over real HTTP (KEYCLOAK.md §1-§3, §6.6)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.jwk import KeySet
from keycloak import KeycloakOpenID

from tests.fakes.keycloak import FakeKeycloak, StandInServer, serve_asgi

SECRET = "auth-service-secret"
OIDC = "/protocol/openid-connect"
NINE_KEYS = {
    "access_token",
    "expires_in",
    "refresh_expires_in",
    "refresh_token",
    "token_type",
    "id_token",
    "not-before-policy",
    "session_state",
    "scope",
}
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def fake() -> FakeKeycloak:
    """A freshly seeded realm."""
    return FakeKeycloak()


@pytest.fixture
def server(fake: FakeKeycloak) -> Iterator[StandInServer]:
    """The realm served by uvicorn on a free port."""
    with StandInServer(fake) as running:
        yield running


@pytest.fixture
def http(server: StandInServer) -> Iterator[httpx.Client]:
    """A client whose base URL is the realm issuer."""
    with httpx.Client(base_url=server.fake.issuer, timeout=10) as client:
        yield client


@pytest.fixture
async def ahttp(server: StandInServer) -> AsyncIterator[httpx.AsyncClient]:
    """An async client whose base URL is the realm issuer."""
    async with httpx.AsyncClient(base_url=server.fake.issuer, timeout=10) as client:
        yield client


def key_set(http: httpx.Client) -> KeySet:
    """Verification keys from the served JWKS (``use: sig`` only, as verifiers must filter)."""
    keys = http.get(f"{OIDC}/certs").json()["keys"]
    return KeySet.import_key_set({"keys": [k for k in keys if k["use"] == "sig"]})


def password_grant(http: httpx.Client, username: str = "alice", **extra: str) -> httpx.Response:
    """A password grant by the confidential ``auth-service`` client (client_secret_post)."""
    form = {"grant_type": "password", "client_id": "auth-service", "client_secret": SECRET}
    form |= {"username": username, "password": f"{username}-password", "scope": "openid"}
    return http.post(f"{OIDC}/token", data=form | extra)


def introspect(http: httpx.Client, token: str) -> dict[str, Any]:
    """Introspect ``token`` as ``auth-service``."""
    form = {"client_id": "auth-service", "client_secret": SECRET, "token": token}
    response = http.post(f"{OIDC}/token/introspect", data=form)
    assert response.status_code == 200
    return response.json()


def header(token: str) -> dict[str, Any]:
    """The JWS protected header, unverified."""
    return dict(jws.extract_compact(token.encode()).protected)


def pkce_pair() -> tuple[str, str]:
    """A (verifier, S256 challenge) pair."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def browser_login(
    http: httpx.Client, *, challenge: str, client_id: str = "acme-web", nonce: str = "n-1"
) -> dict[str, list[str]]:
    """Run the authorization endpoint + login form; returns the redirect's query parameters."""
    params = {
        "client_id": client_id,
        "redirect_uri": "https://app.example/cb",
        "response_type": "code",
        "scope": "openid profile email",
        "state": "st-1",
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    page = http.get(f"{OIDC}/auth", params=params)
    assert page.status_code == 200
    assert "name='code_challenge'" in page.text
    login = http.post(
        "/login-actions/authenticate",
        data=params | {"username": "alice", "password": "alice-password"},
    )
    assert login.status_code == 302
    location = urlsplit(login.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://app.example/cb"
    return parse_qs(location.query)


class TestMetadata:
    def test_discovery_has_python_keycloak_keys_pointing_at_this_server(
        self, http: httpx.Client, fake: FakeKeycloak
    ) -> None:
        """Discovery has every key python-keycloak's live test expects, with this server's URLs."""
        doc = http.get("/.well-known/openid-configuration").json()
        expected = {
            "acr_values_supported",
            "authorization_endpoint",
            "backchannel_authentication_endpoint",
            "backchannel_logout_session_supported",
            "backchannel_logout_supported",
            "backchannel_token_delivery_modes_supported",
            "check_session_iframe",
            "claims_supported",
            "code_challenge_methods_supported",
            "device_authorization_endpoint",
            "end_session_endpoint",
            "frontchannel_logout_session_supported",
            "frontchannel_logout_supported",
            "grant_types_supported",
            "id_token_signing_alg_values_supported",
            "introspection_endpoint",
            "issuer",
            "jwks_uri",
            "mtls_endpoint_aliases",
            "pushed_authorization_request_endpoint",
            "registration_endpoint",
            "response_modes_supported",
            "response_types_supported",
            "revocation_endpoint",
            "scopes_supported",
            "subject_types_supported",
            "token_endpoint",
            "token_endpoint_auth_methods_supported",
            "userinfo_endpoint",
        }
        assert expected <= doc.keys()
        assert doc["issuer"] == fake.issuer
        assert fake.issuer.endswith("/realms/acme")
        assert "/auth/" not in doc["token_endpoint"]
        assert doc["token_endpoint"] == f"{fake.issuer}{OIDC}/token"
        assert doc["jwks_uri"] == f"{fake.issuer}{OIDC}/certs"
        assert http.get(doc["end_session_endpoint"].removeprefix(fake.issuer)).status_code == 200

    def test_jwks_publishes_rsa_sig_key_and_an_enc_key(
        self, http: httpx.Client, fake: FakeKeycloak
    ) -> None:
        """JWKS entries carry kty/alg/use/n/e and 43-char kids: RS256 sig plus RSA-OAEP enc."""
        keys = http.get(f"{OIDC}/certs").json()["keys"]
        assert [(k["alg"], k["use"]) for k in keys] == [("RS256", "sig"), ("RSA-OAEP", "enc")]
        for key in keys:
            assert {"kty", "alg", "use", "n", "e", "kid"} <= key.keys()
            assert key["kty"] == "RSA"
            assert len(key["kid"]) == 43
            assert "d" not in key
        assert keys[0]["kid"] == fake.active_kid

    def test_realm_info_exposes_active_public_key(self, http: httpx.Client) -> None:
        """``GET /realms/acme`` returns the realm document with the base64 DER public key."""
        info = http.get("").json()
        assert info["realm"] == "acme"
        assert base64.b64decode(info["public_key"])[:2] == b"\x30\x82"
        assert info["tokens-not-before"] == 0

    def test_unknown_realm_is_404(self, server: StandInServer) -> None:
        """Other realms do not exist."""
        response = httpx.get(f"{server.base_url}/realms/other/.well-known/openid-configuration")
        assert response.status_code == 404
        assert response.json() == {"error": "Realm does not exist"}


class TestTokenEndpoint:
    def test_password_grant_returns_nine_keys_and_a_verifiable_access_token(
        self, http: httpx.Client, fake: FakeKeycloak
    ) -> None:
        """The password grant answers the nine §2.1 keys; the access token verifies against the
        JWKS and has the §2.2 shape."""
        body = password_grant(http).json()
        assert body.keys() == NINE_KEYS
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 300
        assert body["refresh_expires_in"] == 1800
        assert header(body["access_token"]) == {
            "alg": "RS256",
            "typ": "JWT",
            "kid": fake.active_kid,
        }
        claims = jwt.decode(body["access_token"], key_set(http)).claims
        assert claims["iss"] == fake.issuer
        assert claims["typ"] == "Bearer"
        assert claims["azp"] == "auth-service"
        assert claims["aud"] == ["orders-api", "account"]
        assert claims["sid"] == body["session_state"]
        assert claims["sub"] == fake.users["alice"].sub
        assert claims["scope"] == body["scope"] == "openid profile email"
        assert {"app-user", "orders-writer", "default-roles-acme"} <= set(
            claims["realm_access"]["roles"]
        )
        assert claims["resource_access"]["orders-api"] == {"roles": ["write"]}
        assert claims["tenant_id"] == "t-001"
        assert claims["org"] == {"site": "berlin"}
        assert claims["preferred_username"] == "alice"
        assert claims["email"] == "alice@example.com"
        assert claims["exp"] - claims["iat"] == 300
        assert claims["jti"]
        assert "session_state" not in claims
        assert "nonce" not in claims

    def test_single_audience_is_a_string(self, http: httpx.Client, fake: FakeKeycloak) -> None:
        """``aud`` is a string when the token has one audience (bob has no client roles; the
        client has no audience mappers)."""
        fake.add_client("plain-app", secret="plain-secret")
        form = {"grant_type": "password", "client_id": "plain-app", "client_secret": "plain-secret"}
        form |= {"username": "bob", "password": "bob-password", "scope": "openid"}
        token = http.post(f"{OIDC}/token", data=form).json()["access_token"]
        claims = jwt.decode(token, key_set(http))
        assert claims.claims["aud"] == "account"

    def test_refresh_token_is_opaque_hs512_with_uuid_kid(
        self, http: httpx.Client, fake: FakeKeycloak
    ) -> None:
        """The refresh token is HS512 with a UUID kid not in the JWKS; payload typ is Refresh."""
        refresh = password_grant(http).json()["refresh_token"]
        head = header(refresh)
        assert head["alg"] == "HS512"
        assert len(head["kid"]) == 36
        assert head["kid"].count("-") == 4
        assert head["kid"] not in {k["kid"] for k in http.get(f"{OIDC}/certs").json()["keys"]}
        payload = jwt.decode(refresh, fake.keys.hmac_key, algorithms=["HS512"]).claims
        assert payload["typ"] == "Refresh"
        assert payload["aud"] == fake.issuer

    def test_client_credentials_has_service_account_shape_and_no_refresh_token(
        self, http: httpx.Client
    ) -> None:
        """client_credentials issues a service-account token (§2.2) and no refresh token."""
        form = {"grant_type": "client_credentials", "client_id": "auth-service"}
        body = http.post(f"{OIDC}/token", data=form | {"client_secret": SECRET}).json()
        assert "refresh_token" not in body
        assert body["refresh_expires_in"] == 0
        claims = jwt.decode(body["access_token"], key_set(http)).claims
        assert claims["preferred_username"] == "service-account-auth-service"
        assert claims["client_id"] == claims["azp"] == "auth-service"
        assert claims["typ"] == "Bearer"
        assert "sid" not in claims
        assert claims["scope"] == "profile email"

    def test_client_secret_basic_is_accepted(self, http: httpx.Client) -> None:
        """Client credentials may come in an HTTP Basic header instead of the form."""
        form = {"grant_type": "client_credentials"}
        response = http.post(f"{OIDC}/token", data=form, auth=("auth-service", SECRET))
        assert response.status_code == 200

    @pytest.mark.parametrize(
        ("form", "status", "error", "description"),
        [
            (
                {"password": "wrong"},
                401,
                "invalid_grant",
                "Invalid user credentials",
            ),
            (
                {"client_secret": "wrong"},
                401,
                "unauthorized_client",
                "Invalid client or Invalid client credentials",
            ),
            (
                {"client_id": "nobody"},
                401,
                "invalid_client",
                "Invalid client or Invalid client credentials",
            ),
            ({"grant_type": "magic"}, 400, "unsupported_grant_type", "Unsupported grant_type"),
            ({"scope": "openid nonsense"}, 400, "invalid_scope", "Invalid scopes: openid nonsense"),
        ],
    )
    def test_errors_use_keycloak_status_and_body(
        self, http: httpx.Client, form: dict[str, str], status: int, error: str, description: str
    ) -> None:
        """Token-endpoint failures answer §3.1's status with ``{"error","error_description"}``."""
        response = password_grant(http, **form)
        assert response.status_code == status
        assert response.json() == {"error": error, "error_description": description}

    def test_refresh_rotates_and_reuse_is_refused(self, http: httpx.Client) -> None:
        """Each refresh token works once; the rotated one works, the old one is refused."""
        first = password_grant(http).json()
        form = {"grant_type": "refresh_token", "client_id": "auth-service", "client_secret": SECRET}
        second = http.post(f"{OIDC}/token", data=form | {"refresh_token": first["refresh_token"]})
        assert second.status_code == 200
        assert second.json().keys() == NINE_KEYS
        assert second.json()["session_state"] == first["session_state"]
        reuse = http.post(f"{OIDC}/token", data=form | {"refresh_token": first["refresh_token"]})
        assert reuse.status_code == 400
        assert reuse.json() == {
            "error": "invalid_grant",
            "error_description": "Invalid refresh token",
        }
        third = http.post(
            f"{OIDC}/token", data=form | {"refresh_token": second.json()["refresh_token"]}
        )
        assert third.status_code == 200

    def test_logout_with_refresh_token_ends_session(self, http: httpx.Client) -> None:
        """POST logout with a refresh token answers 204; the session's refresh then fails with
        "Session not active" and its access token introspects inactive; a bad token is 400."""
        body = password_grant(http).json()
        creds = {"client_id": "auth-service", "client_secret": SECRET}
        out = http.post(f"{OIDC}/logout", data=creds | {"refresh_token": body["refresh_token"]})
        assert out.status_code == 204
        assert out.content == b""
        form = creds | {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
        again = http.post(f"{OIDC}/token", data=form)
        assert again.status_code == 400
        assert again.json()["error_description"] == "Session not active"
        assert introspect(http, body["access_token"]) == {"active": False}
        bad = http.post(f"{OIDC}/logout", data=creds | {"refresh_token": "junk"})
        assert bad.status_code == 400
        assert bad.json() == {
            "error": "invalid_grant",
            "error_description": "Invalid refresh token",
        }


class TestBrowserFlow:
    def test_authorization_code_with_pkce(self, http: httpx.Client, fake: FakeKeycloak) -> None:
        """Login form → 302 with code/state/session_state/iss → code + verifier exchange returns
        the nine keys; the ID token carries nonce, a correct at_hash, sid, typ ID, aud client."""
        verifier, challenge = pkce_pair()
        query = browser_login(http, challenge=challenge)
        assert query["state"] == ["st-1"]
        assert query["iss"] == [fake.issuer]
        form = {
            "grant_type": "authorization_code",
            "client_id": "acme-web",
            "code": query["code"][0],
            "redirect_uri": "https://app.example/cb",
            "code_verifier": verifier,
        }
        body = http.post(f"{OIDC}/token", data=form).json()
        assert body.keys() == NINE_KEYS
        id_claims = jwt.decode(body["id_token"], key_set(http)).claims
        digest = hashlib.sha256(body["access_token"].encode()).digest()
        expected_hash = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
        assert id_claims["at_hash"] == expected_hash
        assert id_claims["nonce"] == "n-1"
        assert id_claims["typ"] == "ID"
        assert id_claims["aud"] == "acme-web"
        assert id_claims["sid"] == query["session_state"][0] == body["session_state"]
        access = jwt.decode(body["access_token"], key_set(http)).claims
        assert "nonce" not in access
        assert access["auth_time"] == id_claims["auth_time"]
        replay = http.post(f"{OIDC}/token", data=form)
        assert replay.json() == {"error": "invalid_grant", "error_description": "Code not valid"}

    @pytest.mark.parametrize(
        ("change", "description"),
        [
            ({"code_verifier": None}, "PKCE code verifier not specified"),
            ({"code_verifier": "x" * 43}, "PKCE verification failed: Invalid code verifier"),
            ({"redirect_uri": "https://evil.example/cb"}, "Code not valid"),
        ],
    )
    def test_code_exchange_failures(
        self, http: httpx.Client, change: dict[str, str | None], description: str
    ) -> None:
        """A missing or wrong PKCE verifier, or a different redirect_uri, is invalid_grant (400)."""
        verifier, challenge = pkce_pair()
        query = browser_login(http, challenge=challenge)
        form: dict[str, str | None] = {
            "grant_type": "authorization_code",
            "client_id": "acme-web",
            "code": query["code"][0],
            "redirect_uri": "https://app.example/cb",
            "code_verifier": verifier,
        }
        form |= change
        response = http.post(f"{OIDC}/token", data={k: v for k, v in form.items() if v})
        assert response.status_code == 400
        assert response.json() == {"error": "invalid_grant", "error_description": description}

    def test_code_expires_after_60_seconds(self, http: httpx.Client, fake: FakeKeycloak) -> None:
        """A code older than 60 s (stand-in clock) is "Code not valid"."""
        verifier, challenge = pkce_pair()
        query = browser_login(http, challenge=challenge)
        fake.advance_clock(61)
        form = {
            "grant_type": "authorization_code",
            "client_id": "acme-web",
            "code": query["code"][0],
            "redirect_uri": "https://app.example/cb",
            "code_verifier": verifier,
        }
        assert http.post(f"{OIDC}/token", data=form).json()["error_description"] == "Code not valid"

    def test_wrong_password_reshows_the_form(self, http: httpx.Client) -> None:
        """A wrong password on the login form answers 200 with the form and an error message."""
        _, challenge = pkce_pair()
        params = {
            "client_id": "acme-web",
            "redirect_uri": "https://app.example/cb",
            "response_type": "code",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        page = http.post(f"{OIDC}/auth", data=params | {"username": "alice", "password": "no"})
        assert page.status_code == 200
        assert "Invalid username or password." in page.text
        assert "kc-form-login" in page.text
        assert "role='alert'" in page.text
        # every visible input is labelled (screen readers, clicking the label focuses it)
        assert "<label for='username'>" in page.text and "id='username'" in page.text
        assert "<label for='password'>" in page.text and "id='password'" in page.text

    def test_authorization_request_validation(self, http: httpx.Client) -> None:
        """Unknown clients are an error page; a plain PKCE method is redirected back as an error."""
        assert http.get(f"{OIDC}/auth", params={"client_id": "nobody"}).status_code == 400
        params = {
            "client_id": "acme-web",
            "redirect_uri": "https://app.example/cb",
            "response_type": "code",
            "code_challenge": "abc",
            "code_challenge_method": "plain",
            "state": "s",
        }
        response = http.get(f"{OIDC}/auth", params=params)
        assert response.status_code == 302
        query = parse_qs(urlsplit(response.headers["location"]).query)
        assert query["error"] == ["invalid_request"]
        assert query["state"] == ["s"]

    def test_end_session_redirects_with_state_and_ends_session(
        self, http: httpx.Client, fake: FakeKeycloak
    ) -> None:
        """GET logout with id_token_hint ends the session and 302s to the post-logout URI."""
        body = password_grant(http).json()
        params = {
            "id_token_hint": body["id_token"],
            "post_logout_redirect_uri": "https://app.example/bye",
            "state": "xyz",
        }
        response = http.get(f"{OIDC}/logout", params=params)
        assert response.status_code == 302
        assert response.headers["location"] == "https://app.example/bye?state=xyz"
        assert fake.session(body["session_state"]) is None
        assert http.get(f"{OIDC}/logout").status_code == 200


class TestIntrospectionAndUserinfo:
    def test_introspection_active_and_inactive(self, http: httpx.Client) -> None:
        """Active tokens introspect to their claims plus client_id/username/token_type/active;
        junk and revoked tokens to ``{"active": false}``; public clients get 403."""
        token = password_grant(http).json()["access_token"]
        active = introspect(http, token)
        assert active["active"] is True
        assert active["username"] == "alice"
        assert active["client_id"] == "auth-service"
        assert active["token_type"] == "Bearer"
        assert active["realm_access"]["roles"]
        assert introspect(http, "not-a-token") == {"active": False}
        creds = {"client_id": "auth-service", "client_secret": SECRET}
        revoked = http.post(f"{OIDC}/revoke", data=creds | {"token": token})
        assert revoked.status_code == 200
        assert revoked.content == b""
        assert introspect(http, token) == {"active": False}
        public = http.post(f"{OIDC}/token/introspect", data={"client_id": "acme-web", "token": "x"})
        assert public.status_code == 403
        assert public.json() == {
            "error": "invalid_request",
            "error_description": "Client not allowed.",
        }

    def test_lightweight_token_is_minimal_but_introspects_in_full(
        self, http: httpx.Client, fake: FakeKeycloak
    ) -> None:
        """A lightweight client's access token carries only the §2.6 claims; introspection
        returns the full claim set."""
        fake.add_client("lean-app", secret="lean-secret", lightweight=True)
        form = {"grant_type": "password", "client_id": "lean-app", "client_secret": "lean-secret"}
        form |= {"username": "alice", "password": "alice-password", "scope": "openid"}
        token = http.post(f"{OIDC}/token", data=form).json()["access_token"]
        claims = jwt.decode(token, key_set(http)).claims
        assert set(claims) == {"exp", "iat", "jti", "iss", "typ", "azp", "sid", "scope"}
        full = introspect(http, token)
        assert full["sub"] == fake.users["alice"].sub
        assert "app-user" in full["realm_access"]["roles"]
        assert full["aud"] == ["orders-api", "account"]
        assert full["tenant_id"] == "t-001"

    def test_userinfo_requires_openid_scope_and_a_live_token(
        self, http: httpx.Client, fake: FakeKeycloak
    ) -> None:
        """Userinfo returns profile claims; no openid scope is 403 insufficient_scope; a bad token
        is 401 invalid_token with a WWW-Authenticate challenge."""
        token = password_grant(http).json()["access_token"]
        info = http.get(f"{OIDC}/userinfo", headers={"Authorization": f"Bearer {token}"}).json()
        assert info["preferred_username"] == "alice"
        assert info["tenant_id"] == "t-001"
        assert "realm_access" not in info
        assert "exp" not in info
        no_openid = fake.mint_access_token(scope="profile email")
        denied = http.get(f"{OIDC}/userinfo", headers={"Authorization": f"Bearer {no_openid}"})
        assert denied.status_code == 403
        assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]
        bad = http.get(f"{OIDC}/userinfo", headers={"Authorization": "Bearer junk"})
        assert bad.status_code == 401
        assert bad.json()["error"] == "invalid_token"
        assert 'error="invalid_token"' in bad.headers["www-authenticate"]

    def test_revoking_refresh_token_ends_session(
        self, http: httpx.Client, fake: FakeKeycloak
    ) -> None:
        """RFC 7009 revocation of a refresh token ends its session."""
        body = password_grant(http).json()
        creds = {"client_id": "auth-service", "client_secret": SECRET}
        http.post(f"{OIDC}/revoke", data=creds | {"token": body["refresh_token"]})
        assert fake.session(body["session_state"]) is None


class TestKeys:
    def test_rotation_keeps_old_kid_published_and_signs_with_new(
        self, http: httpx.Client, fake: FakeKeycloak
    ) -> None:
        """After rotate_keys the old kid stays in the JWKS (old tokens verify) and new tokens
        use the new kid; retire_key removes a kid and its tokens stop introspecting active."""
        old_kid = fake.active_kid
        old_token = password_grant(http).json()["access_token"]
        new_kid = fake.rotate_keys()
        assert new_kid != old_kid
        assert fake.active_kid == new_kid
        kids = {k["kid"] for k in http.get(f"{OIDC}/certs").json()["keys"]}
        assert {old_kid, new_kid} <= kids
        new_token = password_grant(http).json()["access_token"]
        assert header(new_token)["kid"] == new_kid
        assert jwt.decode(old_token, key_set(http)).claims["typ"] == "Bearer"
        fake.retire_key(old_kid)
        assert old_kid not in {k["kid"] for k in http.get(f"{OIDC}/certs").json()["keys"]}
        assert introspect(http, old_token) == {"active": False}

    @pytest.mark.parametrize("alg", ["ES256", "PS256"])
    def test_extra_algorithms(self, http: httpx.Client, fake: FakeKeycloak, alg: str) -> None:
        """ES256 and PS256 keys are published and can sign minted tokens."""
        kid = fake.add_key(alg)
        token = fake.mint_access_token(alg=alg)
        assert header(token) == {"alg": alg, "typ": "JWT", "kid": kid}
        decoded = jwt.decode(token, key_set(http), algorithms=[alg])
        assert decoded.claims["typ"] == "Bearer"

    def test_mint_options(self, fake: FakeKeycloak) -> None:
        """Minting honours audience, extra claims (None deletes), header overrides and now."""
        token = fake.mint_access_token(
            "bob",
            audience="orders-api",
            extra_claims={"acr": None, "tenant_id": "t-9"},
            header_overrides={"typ": "at+jwt"},
            now=1_000_000,
            lifetime=60,
        )
        claims = jwt.decode(token, fake.private_jwk(fake.active_kid)).claims
        assert claims["aud"] == "orders-api"
        assert "acr" not in claims
        assert claims["tenant_id"] == "t-9"
        assert claims["exp"] == 1_000_060
        assert header(token)["typ"] == "at+jwt"
        assert len(fake.private_jwk(fake.active_kid).thumbprint()) == 43


class TestFaultsAndAvailability:
    def test_error500_and_garbage(self, http: httpx.Client, fake: FakeKeycloak) -> None:
        """error500 answers Keycloak's 500 body; garbage answers 200 with a non-JSON body or a
        junk JWKS; clearing restores normal answers."""
        fake.set_fault("token", "error500")
        response = password_grant(http)
        assert response.status_code == 500
        assert response.json() == {
            "error": "unknown_error",
            "error_description": "For more on this error consult the server log.",
        }
        fake.set_fault("discovery", "garbage")
        fake.set_fault("jwks", "garbage")
        garbage = http.get("/.well-known/openid-configuration")
        assert garbage.status_code == 200
        with pytest.raises(ValueError):
            garbage.json()
        junk = http.get(f"{OIDC}/certs").json()["keys"]
        assert junk[0]["kid"] == "junk"
        fake.clear_faults()
        assert password_grant(http).status_code == 200

    async def test_slow_fault_still_answers(
        self, ahttp: httpx.AsyncClient, fake: FakeKeycloak
    ) -> None:
        """A slow endpoint answers normally after its delay, and the request is counted."""
        fake.set_fault("*", "slow", delay=0.2)
        response = await ahttp.get(f"{OIDC}/certs")
        assert response.status_code == 200
        assert response.json()["keys"]
        assert fake.requests["jwks"] == 1

    def test_hang_holds_until_cleared(self, http: httpx.Client, fake: FakeKeycloak) -> None:
        """A hanging endpoint never answers (client times out) until the fault is cleared."""
        fake.set_fault("jwks", "hang")
        with pytest.raises(httpx.ReadTimeout):
            http.get(f"{OIDC}/certs", timeout=0.3)
        fake.clear_faults()
        assert http.get(f"{OIDC}/certs").status_code == 200
        assert fake.requests["jwks"] == 2

    def test_requests_are_counted_and_request_ids_logged(
        self, http: httpx.Client, fake: FakeKeycloak
    ) -> None:
        """Each request is counted per endpoint and logged with its headers (X-Request-ID)."""
        http.get(f"{OIDC}/certs", headers={"X-Request-ID": "rid-42"})
        http.get("/.well-known/openid-configuration")
        assert fake.requests["jwks"] == 1
        assert fake.requests["discovery"] == 1
        endpoint, headers = fake.request_log[0]
        assert endpoint == "jwks"
        assert headers["x-request-id"] == "rid-42"

    def test_stop_refuses_and_start_serves_on_the_same_port(self, server: StandInServer) -> None:
        """stop() makes connections fail; start() serves again on the same port and issuer."""
        url = f"{server.issuer}{OIDC}/certs"
        port, issuer = server.port, server.issuer
        assert httpx.get(url).status_code == 200
        server.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(url)
        server.start()
        assert server.port == port
        assert server.issuer == issuer
        assert httpx.get(url).status_code == 200


class TestBackchannelLogout:
    @pytest.fixture
    def receiver(self) -> Iterator[tuple[str, list[str]]]:
        """A tiny ASGI receiver recording posted ``logout_token`` values."""
        received: list[str] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            received.extend(parse_qs(body.decode())["logout_token"])
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        with serve_asgi(app) as running:
            yield f"{running.base_url}/backchannel-logout", received

    def test_logout_delivers_a_logout_token(
        self, http: httpx.Client, fake: FakeKeycloak, receiver: tuple[str, list[str]]
    ) -> None:
        """Ending a session POSTs a §2.5 logout token (typ logout+jwt) to the client's URL."""
        url, received = receiver
        fake.clients["auth-service"].backchannel_logout_url = url
        body = password_grant(http).json()
        creds = {"client_id": "auth-service", "client_secret": SECRET}
        http.post(f"{OIDC}/logout", data=creds | {"refresh_token": body["refresh_token"]})
        assert len(received) == 1
        assert header(received[0])["typ"] == "logout+jwt"
        claims = jwt.decode(received[0], key_set(http)).claims
        assert claims["typ"] == "Logout"
        assert claims["aud"] == "auth-service"
        assert claims["sid"] == body["session_state"]
        assert claims["exp"] - claims["iat"] == 120
        assert claims["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}}
        assert "nonce" not in claims
        delivery = fake.backchannel_deliveries[0]
        assert delivery.status_code == 200
        assert delivery.client_id == "auth-service"

    async def test_admin_logout_with_kc24_header(
        self, ahttp: httpx.AsyncClient, fake: FakeKeycloak, receiver: tuple[str, list[str]]
    ) -> None:
        """admin_logout_user ends every session of the user; logout_token_typ="JWT" is honoured."""
        url, received = receiver
        fake.clients["auth-service"].backchannel_logout_url = url
        fake.logout_token_typ = "JWT"
        fake.mint_access_token("alice", client_id="auth-service")
        fake.mint_access_token("alice", client_id="auth-service")
        deliveries = await fake.admin_logout_user("alice")
        assert [d.status_code for d in deliveries] == [200, 200]
        assert {header(t)["typ"] for t in received} == {"JWT"}
        crafted = fake.mint_logout_token(include_sid=False)
        assert (await fake.send_logout_token(url, crafted)).status_code == 200


class TestPythonKeycloak:
    def test_keycloak_openid_round_trip(self, server: StandInServer) -> None:
        """python-keycloak's KeycloakOpenID: well_known, token, introspect, userinfo,
        refresh_token, decode_token and logout work against the stand-in."""
        oidc = KeycloakOpenID(
            server_url=f"{server.base_url}/",
            realm_name="acme",
            client_id="auth-service",
            client_secret_key=SECRET,
        )
        assert oidc.well_known()["issuer"] == server.issuer
        tokens = oidc.token("alice", "alice-password")
        assert tokens.keys() == NINE_KEYS
        assert oidc.introspect(tokens["access_token"])["active"] is True
        assert oidc.userinfo(tokens["access_token"])["preferred_username"] == "alice"
        claims = oidc.decode_token(tokens["access_token"])
        assert claims["azp"] == "auth-service"
        refreshed = oidc.refresh_token(tokens["refresh_token"])
        assert oidc.logout(refreshed["refresh_token"]) == {}
        assert oidc.introspect(tokens["access_token"]) == {"active": False}


class TestControlApiAndProcess:
    def test_control_api(self, server: StandInServer, fake: FakeKeycloak) -> None:
        """The /_standin API rotates keys, sets/clears faults, reports counters, mints tokens
        and ends sessions."""
        with httpx.Client(base_url=f"{server.base_url}/_standin", timeout=10) as control:
            kid = control.post("/rotate-keys").json()["kid"]
            assert fake.active_kid == kid
            assert (
                control.post("/faults", json={"endpoint": "jwks", "mode": "error500"}).status_code
                == 204
            )
            assert httpx.get(f"{server.issuer}{OIDC}/certs").status_code == 500
            assert control.delete("/faults").status_code == 204
            assert control.get("/requests").json() == {"jwks": 1}
            token = control.post("/mint", json={"username": "bob", "audience": ["a", "b"]})
            claims = jwt.decode(token.json()["access_token"], fake.private_jwk(kid)).claims
            assert claims["aud"] == ["a", "b"]
            assert claims["preferred_username"] == "bob"
            assert control.post("/end-session", json={"sid": claims["sid"]}).status_code == 200
            assert fake.session(claims["sid"]) is None

    def test_runs_as_a_process(self) -> None:
        """``python -m tests.fakes.keycloak`` serves the realm once its ready line is printed."""
        command = [sys.executable, "-m", "tests.fakes.keycloak", "--port", "0", "--realm", "acme"]
        command += ["--backchannel-url", "http://127.0.0.1:9/bc"]
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            base = line.split()[3]
            doc = httpx.get(f"{base}/realms/acme/.well-known/openid-configuration", timeout=10)
            assert doc.json()["issuer"] == f"{base}/realms/acme"
            minted = httpx.post(f"{base}/_standin/mint", json={}, timeout=10)
            assert minted.json()["access_token"].count(".") == 2
        finally:
            process.terminate()
            process.wait(timeout=10)
