"""The three front doors, browsers vs APIs, MFA challenges, and the response-header table."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from auth_service.verifier import AssertionVerifier, JWKSCache, read_identity
from tests.fakes.keycloak import FakeKeycloak
from tests.integration.forward_auth.conftest import auth_request

BROWSER = {"Accept": "text/html,application/xhtml+xml"}
LOGIN = "http://auth.test/auth/login?rd="


async def test_allowed_answer_carries_the_identity_headers(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """200 with subject, user, email, sorted roles, MFA state, tenant and site headers."""
    token = idp.mint_access_token("alice")
    r = await auth_request(service, token=token, headers={"X-Request-ID": "rid-allowed"})
    assert r.status_code == 200
    assert r.content == b""
    claims = idp.verify(token)
    assert r.headers["x-auth-subject"] == claims["sub"]
    assert r.headers["x-auth-user"] == "alice"
    assert r.headers["x-auth-email"] == "alice@example.com"
    roles = r.headers["x-auth-roles"].split(",")
    assert roles == sorted(roles) and "orders-writer" in roles
    assert r.headers["x-auth-mfa"] == "none"
    assert r.headers["x-auth-tenant"] == "t-001"
    assert r.headers["x-request-id"] == "rid-allowed"


async def test_assertion_verifies_for_the_original_host_only(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """X-Auth-Assertion verifies with the service JWKS for aud = original host, not another."""
    token = idp.mint_access_token("alice")
    r = await auth_request(service, token=token, url="https://app.test/orders/1")
    assertion = r.headers["x-auth-assertion"]
    jwks = await service.get("/.well-known/jwks.json")
    assert jwks.status_code == 200

    import httpx

    http = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, content=jwks.content))
    )
    keys = JWKSCache("http://auth.test/.well-known/jwks.json", http)
    good = AssertionVerifier(issuer="http://auth.test", audience="app.test", keys=keys)
    claims = await good.verify(assertion)
    assert claims.sub == idp.verify(token)["sub"]
    assert "orders-writer" in claims.realm_roles
    assert claims.raw["tenant_id"] == "t-001"
    assert claims.raw["exp"] - claims.raw["iat"] <= 60
    other = AssertionVerifier(issuer="http://auth.test", audience="other.test", keys=keys)
    from auth_service.verifier import TokenError

    with pytest.raises(TokenError):
        await other.verify(assertion)
    again = await auth_request(service, token=token, url="https://app.test/orders/2")
    assert again.headers["x-auth-assertion"] == assertion  # reused within half its lifetime
    await http.aclose()


async def test_anonymous_rule_answers_200_without_identity(
    service: AsyncTestClient[Litestar],
) -> None:
    """Anonymous rules answer 200 with only X-Request-ID."""
    r = await auth_request(service, url="https://app.test/public/page")
    assert r.status_code == 200
    assert not [h for h in r.headers if h.startswith("x-auth-")]


async def test_api_without_credentials_gets_bearer_challenge(
    service: AsyncTestClient[Litestar],
) -> None:
    """No credentials, API request: 401 with the bare RFC 6750 challenge."""
    r = await auth_request(service)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="auth-service"'
    assert r.json()["reason"] == "authentication_required"


async def test_nginx_browser_gets_401_with_redirect_header(
    service: AsyncTestClient[Litestar],
) -> None:
    """auth_request: an unauthenticated browser gets 401 + X-Auth-Redirect to the login URL."""
    r = await auth_request(service, headers=BROWSER)
    assert r.status_code == 401
    assert r.headers["x-auth-redirect"] == LOGIN + quote("https://app.test/orders/1", safe="")


async def test_traefik_browser_gets_302_to_login(service: AsyncTestClient[Litestar]) -> None:
    """forward-auth: an unauthenticated browser gets 302 to the login URL with rd."""
    r = await service.get(
        "/authz/forward-auth",
        headers={
            **BROWSER,
            "X-Forwarded-Method": "GET",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "app.test",
            "X-Forwarded-Uri": "/orders/1?x=1",
        },
        follow_redirects=False,
    )
    assert r.status_code == 302
    assert r.headers["location"] == LOGIN + quote("https://app.test/orders/1?x=1", safe="")


async def test_envoy_browser_gets_302_and_api_401(service: AsyncTestClient[Litestar]) -> None:
    """ext-authz reads method, Host and the path after the prefix."""
    r = await service.get(
        "/authz/ext-authz/orders/1", headers={**BROWSER, "Host": "app.test"}, follow_redirects=False
    )
    assert r.status_code == 302
    assert r.headers["location"].startswith(LOGIN)
    api = await service.post("/authz/ext-authz/orders/1", headers={"Host": "app.test"})
    assert api.status_code == 401


async def test_post_from_a_browser_is_an_api_request(service: AsyncTestClient[Litestar]) -> None:
    """Browser means GET/HEAD with Accept text/html: a POST never gets a redirect."""
    r = await auth_request(service, method="POST", headers=BROWSER)
    assert r.status_code == 401
    assert "x-auth-redirect" not in r.headers


async def test_bad_bearer_from_a_browser_is_still_an_api_401(
    service: AsyncTestClient[Litestar],
) -> None:
    """A bearer token means API: 401 invalid_token, no redirect, even with Accept text/html."""
    r = await auth_request(service, token="garbage", headers=BROWSER)
    assert r.status_code == 401
    assert "invalid_token" in r.headers["www-authenticate"]


async def test_missing_role_is_403_with_reason(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """bob lacks orders-writer: POST /orders is 403 missing_role, for browsers too."""
    token = idp.mint_access_token("bob")
    r = await auth_request(service, token=token, method="POST")
    assert r.status_code == 403
    body = r.json()
    assert body["reason"] == "missing_role"
    assert token not in r.text


async def test_mfa_rule_challenges_api_and_redirects_browser(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """require_mfa without TOTP: RFC 9470 challenge for APIs; MFA redirect for browsers."""
    token = idp.mint_access_token("alice")
    r = await auth_request(service, token=token, url="https://app.test/payments/9")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="TOTP second factor required"'
    )
    assert r.json()["reason"] == "mfa_required"


@pytest.mark.parametrize(
    ("target", "method", "expected"),
    [
        ("/public/../admin/x", "GET", 403),
        ("/public/%2e%2e/admin/x", "GET", 403),
        ("//admin/x", "GET", 403),
        ("/admin/.", "GET", 403),
        ("/public%2F..%2Fadmin", "GET", 400),
        ("/public/page", "get", 200),
        ("/PUBLIC/page", "GET", 400),
        ("/other/PAGE", "GET", 200),
        ("/public/%00", "GET", 400),
    ],
)
async def test_paths_are_decided_normalised(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak, target: str, method: str, expected: int
) -> None:
    """Traversal and encoding tricks are decided on the normalised path (admin needs auth-admin);
    encoded separators, and case that a case-insensitive upstream routes elsewhere, are 400."""
    token = idp.mint_access_token("bob")
    r = await service.get(
        "/authz/forward-auth",
        headers={
            "Authorization": f"Bearer {token}",
            "X-Forwarded-Method": method,
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "app.test",
            "X-Forwarded-Uri": target,
        },
    )
    assert r.status_code == expected, (target, r.text)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Original-URL": "not a url"},
        {"X-Original-URL": "javascript:alert(1)"},
        {"X-Original-URL": "https://app.test/a b"},
        {"X-Original-URL": "https://ap<p>.test/"},
        {"X-Original-URL": "https://[app.test/orders"},
        {"X-Original-URL": "https://app.test]/orders"},
        {"X-Original-URL": "https://app.test:99999999999/orders"},
    ],
)
async def test_unreadable_forwarded_request_is_400(
    service: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    """A gateway description we cannot read is a 400 problem, not a guess."""
    r = await service.get("/authz/auth-request", headers=headers)
    assert r.status_code == 400
    assert r.json()["reason"] == "bad_forwarded_request"


async def test_claim_header_values_cannot_inject_headers(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """A claim with CR/LF or non-ASCII is percent-encoded into one header value."""
    token = idp.mint_access_token(
        extra_claims={"tenant_id": "t\r\nX-Auth-User: admin", "email": "jürgen@x.test"}
    )
    r = await auth_request(service, token=token)
    assert r.status_code == 200
    assert r.headers["x-auth-tenant"] == "t%0D%0AX-Auth-User: admin"
    assert r.headers["x-auth-user"] == "alice"
    assert r.headers["x-auth-email"] == "j%C3%BCrgen@x.test"


async def test_a_role_named_with_a_comma_cannot_forge_roles(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """Issue 12 item 5: a realm role ``auth-admin,evil`` arrives as one percent-encoded item,
    never as ``auth-admin`` plus ``evil``; a list claim header is encoded item by item."""
    token = idp.mint_access_token(
        extra_claims={
            "realm_access": {"roles": ["user", "auth-admin,evil", "50% off"]},
            "tenant_id": ["t-1", "t,2"],
        }
    )
    r = await auth_request(service, token=token)
    assert r.status_code == 200
    assert r.headers["x-auth-roles"] == "50%25%20off,auth-admin%2Cevil,user"
    assert "auth-admin" not in r.headers["x-auth-roles"].split(",")
    assert r.headers["x-auth-tenant"] == "t%2C2,t-1"
    assert read_identity(r.headers.items()).roles == ("50% off", "auth-admin,evil", "user")
