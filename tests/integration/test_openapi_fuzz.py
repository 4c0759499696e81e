"""Outside-in: schemathesis drives every Litestar route from the service's own OpenAPI document.

The real ``auth-service serve`` process (the stand-in IdP behind it) answers
generated requests, bounded per operation. For every response: no 5xx, the
response matches what the document says (status codes it documents, their
schemas and media types), and every 4xx is ``application/problem+json`` with
the contract's fields (CONTRACT §4: "Error bodies ... for every endpoint").
Requests go anonymous and with a valid token of a user without admin roles,
so the guards' refusals are exercised as well as the handlers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
)

from auth_service.app import create_app
from auth_service.config import load_settings
from tests.conftest import DATA, REDIS_URL
from tests.fakes.keycloak import FakeKeycloak, StandInServer
from tests.support.processes import ServiceProcess

PROBLEM_FIELDS = {"type", "title", "status", "detail", "request_id"}


@pytest.fixture(scope="module")
def idp_module() -> Iterator[FakeKeycloak]:
    fake = FakeKeycloak()
    server = StandInServer(fake)
    server.start()
    yield fake
    server.stop()


@pytest.fixture(scope="module")
def idp_env_module(
    idp_module: FakeKeycloak,
    database_url: str,
    redis_prefix: str,
    secret_key_b64: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    return {
        "AUTH_OIDC_ISSUER": idp_module.issuer,
        "AUTH_OIDC_CLIENT_SECRET": "auth-service-secret",
        "AUTH_OIDC_AUDIENCES": "orders-api,auth-service",
        "AUTH_PUBLIC_URL": "http://auth.test",
        "AUTH_DATABASE_URL": database_url,
        "AUTH_REDIS_URL": REDIS_URL,
        "AUTH_REDIS_PREFIX": f"{redis_prefix}fuzz:",
        "AUTH_POLICY_FILE": str(DATA / "policy.toml"),
        "AUTH_SECRET_KEYS": f"k1:{secret_key_b64}",
        "AUTH_ALLOWED_REDIRECT_HOSTS": "app.test",
        "AUTH_AUDIT_SPOOL_DIR": str(tmp_path_factory.mktemp("fuzz-spool")),
        "AUTH_LOG_LEVEL": "warning",
        "AUTH_ACCESS_LOG": "false",
    }


@pytest.fixture(scope="module")
def running(idp_env_module: dict[str, str]) -> Iterator[ServiceProcess]:
    with ServiceProcess(idp_env_module) as svc:
        yield svc


def _document() -> dict[str, object]:
    """The OpenAPI document, from an app built (not started) by the same factory as `serve`."""
    env = {
        "AUTH_OIDC_ISSUER": "http://127.0.0.1:9/realms/acme",
        "AUTH_OIDC_CLIENT_SECRET": "x",
        "AUTH_PUBLIC_URL": "http://auth.test",
        "AUTH_DATABASE_URL": "postgresql://127.0.0.1:9/none",
        "AUTH_REDIS_URL": "redis://127.0.0.1:9/0",
        "AUTH_POLICY_FILE": str(DATA / "policy.toml"),
        "AUTH_SECRET_KEYS": "k1:" + "A" * 43 + "=",
    }
    app = create_app(load_settings(env, env_file=False), configure_logs=False)
    return app.openapi_schema.to_schema()


schema = schemathesis.openapi.from_dict(_document())


def _problem_on_4xx(response: object) -> None:
    status = response.status_code  # type: ignore[attr-defined]
    if 400 <= status < 500 and status != 405:
        media = response.headers.get("content-type", [""])  # type: ignore[attr-defined]
        media = media[0] if isinstance(media, list) else media
        assert media.startswith("application/problem+json"), (status, media)
        body = json.loads(response.content)  # type: ignore[attr-defined]
        assert set(body) >= PROBLEM_FIELDS, body
        assert body["status"] == status


CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_route_anonymous(case: schemathesis.Case, running: ServiceProcess) -> None:
    response = case.call(base_url=running.url, timeout=10)
    case.validate_response(response, checks=CHECKS)
    _problem_on_4xx(response)


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_route_as_a_user(
    case: schemathesis.Case, running: ServiceProcess, user_token: str
) -> None:
    response = case.call(
        base_url=running.url, headers={"Authorization": f"Bearer {user_token}"}, timeout=10
    )
    case.validate_response(response, checks=CHECKS)
    _problem_on_4xx(response)


@pytest.fixture(scope="module")
def user_token(idp_module: FakeKeycloak) -> str:
    token: str = idp_module.mint_access_token("bob", lifetime=3600)
    return token


def test_the_served_document_is_the_one_tested(running: ServiceProcess) -> None:
    served = httpx.get(f"{running.url}/openapi/openapi.json").json()
    assert served == _document()
    paths = set(served["paths"])
    for path in ("/auth/login", "/mfa/totp", "/tokens/introspect", "/admin/audit-events"):
        assert path in paths, sorted(paths)
