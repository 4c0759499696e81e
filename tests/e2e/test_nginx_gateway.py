"""Through a real nginx with gateway_config/nginx: auth_request, header hygiene, request ids."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.conftest import Gateway, StandIn, start_gateway
from tests.support.processes import ServiceProcess, free_port, wait_until

pytestmark = pytest.mark.e2e

JSON = {"Accept": "application/json"}
NGINX_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **JSON}


class TestAllowed:
    def test_valid_token_reaches_demo_with_identity_and_client_request_id(
        self, gateway: Gateway, standin: StandIn, client: httpx.Client
    ) -> None:
        """alice's token passes; the demo sees her identity headers and the client's request id."""
        rid = f"e2e-{uuid.uuid4().hex[:12]}"
        r = client.get(
            f"{gateway.url}/orders/1",
            headers={**_bearer(standin.mint(username="alice")), "X-Request-ID": rid},
        )
        assert r.status_code == 200, r.text
        seen = r.json()
        identity = seen["identity"]
        assert identity["x-auth-user"] == "alice"
        assert identity["x-auth-email"] == "alice@example.com"
        assert identity["x-auth-tenant"] == "t-001"
        assert identity["x-auth-site"] == "berlin"
        assert identity["x-auth-mfa"] == "none"
        assert "orders-writer" in identity["x-auth-roles"].split(",")
        assert re.fullmatch(r"[0-9a-f-]{36}", identity["x-auth-subject"])
        assert seen["request_id"] == rid
        assert r.headers["x-request-id"] == rid
        assert "x-auth-redirect" not in seen["headers"]

    def test_post_body_reaches_demo_and_not_the_check(
        self, gateway: Gateway, standin: StandIn, client: httpx.Client
    ) -> None:
        """A POST allowed by the orders-writer rule is proxied with its method to the demo."""
        r = client.post(
            f"{gateway.url}/orders/7",
            headers=_bearer(standin.mint(username="alice")),
            content=b'{"qty": 2}',
        )
        assert r.status_code == 200, r.text
        assert r.json()["method"] == "POST"
        assert r.json()["identity"]["x-auth-user"] == "alice"

    def test_jwks_is_served_through_the_gateway_without_auth(
        self, gateway: Gateway, client: httpx.Client
    ) -> None:
        """``/.well-known/jwks.json`` goes straight to the service: public EC keys, no check."""
        r = client.get(f"{gateway.url}/.well-known/jwks.json")
        assert r.status_code == 200, r.text
        keys = r.json()["keys"]
        assert keys
        assert all(k["kty"] == "EC" and "d" not in k for k in keys)


class TestForgedHeaders:
    def test_forged_identity_is_overwritten_for_an_authenticated_request(
        self, gateway: Gateway, standin: StandIn, client: httpx.Client
    ) -> None:
        """Client-sent X-Auth-User/Roles/Assertion never reach the demo; the vouched ones do."""
        headers = {
            **_bearer(standin.mint(username="bob")),
            "X-Auth-User": "admin",
            "X-Auth-Roles": "auth-admin",
            "X-Auth-Assertion": "forged",
            "X-Auth-Redirect": "https://evil.example/",
        }
        r = client.get(f"{gateway.url}/orders/1", headers=headers)
        assert r.status_code == 200, r.text
        seen = r.json()["headers"]
        assert seen["x-auth-user"] == "bob"
        assert "auth-admin" not in seen["x-auth-roles"].split(",")
        assert seen["x-auth-assertion"] != "forged"
        assert seen["x-auth-assertion"].count(".") == 2
        assert "x-auth-redirect" not in seen

    def test_a_role_named_with_a_comma_reaches_the_demo_as_one_role(
        self, gateway: Gateway, standin: StandIn, client: httpx.Client
    ) -> None:
        """A realm role ``auth-admin,evil`` is one percent-encoded item through nginx; the demo
        decodes it (with the verifier library) as that one role, not as ``auth-admin``."""
        token = standin.mint(
            username="bob",
            extra_claims={"realm_access": {"roles": ["app-user", "auth-admin,evil", "é"]}},
        )
        r = client.get(f"{gateway.url}/orders/1", headers=_bearer(token))
        assert r.status_code == 200, r.text
        seen = r.json()
        assert seen["identity"]["x-auth-roles"] == "app-user,auth-admin%2Cevil,%C3%A9"
        assert seen["decoded"]["roles"] == ["app-user", "auth-admin,evil", "é"]
        assert seen["decoded"]["username"] == "bob"

    def test_forged_identity_is_removed_on_an_anonymous_rule(
        self, gateway: Gateway, client: httpx.Client
    ) -> None:
        """Without credentials on a public path no X-Auth-* header reaches the demo at all."""
        headers = {
            **JSON,
            "X-Auth-User": "admin",
            "X-Auth-Subject": "0000",
            "X-Auth-Roles": "auth-admin",
            "X-Auth-Tenant": "t-001",
            "X-Auth-MFA": "totp",
            "X-Auth-Assertion": "forged",
            "X_Auth_User": "admin",
        }
        r = client.get(f"{gateway.url}/public/page", headers=headers)
        assert r.status_code == 200, r.text
        seen = r.json()["headers"]
        assert [h for h in seen if h.startswith(("x-auth", "x_auth"))] == []


class TestRefused:
    def test_browser_without_token_is_redirected_to_login(
        self, gateway: Gateway, e2e_env: dict[str, str], client: httpx.Client
    ) -> None:
        """GET with Accept text/html and no credentials → 302 to <public_url>/auth/login?rd=URL."""
        r = client.get(f"{gateway.url}/orders/1?page=2", headers={"Accept": "text/html"})
        assert r.status_code == 302, r.text
        location = urlsplit(r.headers["location"])
        public = urlsplit(e2e_env["AUTH_PUBLIC_URL"])
        assert (location.scheme, location.netloc, location.path) == (
            public.scheme,
            public.netloc,
            "/auth/login",
        )
        assert parse_qs(location.query)["rd"] == [f"{gateway.url}/orders/1?page=2"]
        assert NGINX_REQUEST_ID.fullmatch(r.headers["x-request-id"])

    def test_api_without_token_gets_401_with_bearer_challenge(
        self, gateway: Gateway, client: httpx.Client
    ) -> None:
        """An API call without credentials → 401, one WWW-Authenticate from the service."""
        r = client.get(f"{gateway.url}/orders/1", headers=JSON)
        assert r.status_code == 401
        assert r.headers.get_list("www-authenticate") == ['Bearer realm="auth-service"']
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["request_id"] == r.headers["x-request-id"]
        assert "location" not in r.headers

    def test_bad_token_gets_401_invalid_token(
        self, gateway: Gateway, standin: StandIn, client: httpx.Client
    ) -> None:
        """A token signed by a key the realm never published → 401 error="invalid_token"."""
        token = standin.mint(username="alice")
        head, payload, sig = token.split(".")
        tampered = f"{head}.{payload}.{sig[:-6]}AAAAAA"
        r = client.get(f"{gateway.url}/orders/1", headers=_bearer(tampered))
        assert r.status_code == 401
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="auth-service", error="invalid_token"')

    def test_rule_denial_is_403(
        self, gateway: Gateway, standin: StandIn, client: httpx.Client
    ) -> None:
        """alice lacks auth-admin (/admin/**); bob lacks orders-writer (POST /orders/**): 403."""
        admin = client.get(
            f"{gateway.url}/admin/users", headers=_bearer(standin.mint(username="alice"))
        )
        write = client.post(
            f"{gateway.url}/orders/1", headers=_bearer(standin.mint(username="bob"))
        )
        for r in (admin, write):
            assert r.status_code == 403, r.text
            assert r.json()["status"] == 403
            assert r.json()["request_id"] == r.headers["x-request-id"]

    def test_browser_denied_by_a_rule_gets_the_html_page(
        self, gateway: Gateway, standin: StandIn, client: httpx.Client
    ) -> None:
        """Accept: text/html -> nginx serves the service's styled 403 page quoting the request
        id (also for a refused POST); an API client on the same route keeps problem+json."""
        token = standin.mint(username="alice")
        browser = {"Authorization": f"Bearer {token}", "Accept": "text/html,*/*;q=0.8"}
        for method in ("GET", "POST"):
            rid = f"e2e-denied-{method.lower()}-{uuid.uuid4().hex[:8]}"
            r = client.request(
                method,
                f"{gateway.url}/admin/users",
                headers={**browser, "X-Request-ID": rid},
                content=b"x=1" if method == "POST" else None,
            )
            assert r.status_code == 403, r.text
            assert r.headers["content-type"].startswith("text/html"), r.headers
            assert "<h1>Access denied</h1>" in r.text
            assert f'<code id="request-id">{rid}</code>' in r.text
            assert r.headers["x-request-id"] == rid
            assert "style-src 'self'" in r.headers["content-security-policy"]
            assert "/demo" not in r.text and "identity" not in r.text  # never the upstream
        css = client.get(f"{gateway.url}/auth/static/style.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        api = client.get(f"{gateway.url}/admin/users", headers=_bearer(token))
        assert api.status_code == 403
        assert api.headers["content-type"].startswith("application/problem+json")
        assert api.json()["status"] == 403


class TestRequestIds:
    def test_missing_request_id_is_generated_by_nginx_and_seen_everywhere(
        self,
        gateway: Gateway,
        auth_service: ServiceProcess,
        standin: StandIn,
        client: httpx.Client,
    ) -> None:
        """No X-Request-ID: nginx's id reaches the demo, the client and the auth service log.

        An allowed check is logged by the gateway only (AUTH_ACCESS_LOG_CHECKS=refusals, the
        default), so the service's line is looked for on a refused request.
        """
        r = client.get(f"{gateway.url}/orders/9", headers=_bearer(standin.mint(username="alice")))
        assert r.status_code == 200, r.text
        rid = r.headers["x-request-id"]
        assert NGINX_REQUEST_ID.fullmatch(rid)
        assert r.json()["request_id"] == rid
        refused = client.get(f"{gateway.url}/orders/9")
        assert refused.status_code == 401
        rid = refused.headers["x-request-id"]
        assert NGINX_REQUEST_ID.fullmatch(rid)

        def logged() -> bool:
            for line in auth_service.logs().splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("request_id") == rid and event.get("path") == "/authz/auth-request":
                    return True
            return False

        wait_until(logged, 10, f"request id {rid} in the auth service log")

    def test_invalid_client_request_id_is_replaced(
        self, gateway: Gateway, standin: StandIn, client: httpx.Client
    ) -> None:
        """An over-long or ill-formed X-Request-ID is replaced before anything sees it."""
        for bad in ("x" * 129, "has spaces in it", "semi;colon"):
            r = client.get(
                f"{gateway.url}/orders/1",
                headers={**_bearer(standin.mint(username="alice")), "X-Request-ID": bad},
            )
            assert r.status_code == 200, r.text
            assert NGINX_REQUEST_ID.fullmatch(r.headers["x-request-id"])
            assert r.json()["request_id"] == r.headers["x-request-id"]


class TestAmbiguousPaths:
    @pytest.mark.parametrize(
        ("path", "user"),
        [
            ("/public/..;/admin/users", None),
            ("/tenants/t-002/..;/t-001/orders", "bob"),
            ("/admin;x=1/users", "bob"),
            ("/ADMIN/users", "bob"),
            ("/payments;x/1", "bob"),
        ],
    )
    def test_ambiguous_path_is_400_and_never_reaches_the_demo(
        self,
        gateway: Gateway,
        standin: StandIn,
        client: httpx.Client,
        path: str,
        user: str | None,
    ) -> None:
        """Through real nginx the review's bypasses end at 400, before the upstream."""
        headers = JSON if user is None else _bearer(standin.mint(username=user))
        r = client.get(f"{gateway.url}{path}", headers=headers)
        assert r.status_code == 400, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert "identity" not in r.text
        browser = client.get(f"{gateway.url}{path}", headers={"Accept": "text/html"})
        assert browser.status_code == 400  # never a login redirect


class TestAuthServiceDown:
    def test_unreachable_auth_service_fails_closed_with_503(
        self,
        nginx_binary: str,
        demo_app: str,
        tmp_path: Path,
        standin: StandIn,
        client: httpx.Client,
    ) -> None:
        """nginx's bare 500 for a failed check becomes 503 + Retry-After; the demo is unreached."""
        gw = start_gateway(
            nginx_binary,
            tmp_path,
            port=free_port(),
            auth_port=free_port(),  # nobody listens there
            demo_port=int(demo_app.rsplit(":", 1)[1]),
        )
        try:
            r = client.get(f"{gw.url}/orders/1", headers=_bearer(standin.mint(username="alice")))
        finally:
            gw.proc.terminate()
            gw.proc.wait(10)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert r.headers["content-type"] == "application/problem+json"
        assert "identity" not in r.text
        assert "auth request unexpected status: 502" in gw.error_log
