"""From DevOps file to gateway header: a realm configured by `keycloak apply` issues tokens whose
custom attribute claim comes out of forward-auth as `X-Auth-Tenant` and satisfies a
`require_claims` rule (tests/data/policy.toml: "tenant isolation")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import AsyncTestClient

from auth_service.app import create_app
from auth_service.cli import main
from auth_service.config import load_settings
from tests.fakes.keycloak import FakeKeycloak, StandInServer
from tests.integration.forward_auth.conftest import auth_request
from tests.support.processes import eventually

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def applied(tmp_path: Path) -> AsyncIterator[FakeKeycloak]:
    """An empty Keycloak configured only by `auth-service keycloak apply` of a DevOps file
    that adds a user `carol` of tenant `t-042` to the shipped development overlay."""
    fake = FakeKeycloak(realm_file=None)
    overlay = tmp_path / "realm.toml"
    overlay.write_text(
        f'base = "{ROOT / "keycloak" / "acme-dev.toml"}"\n'
        "[[users]]\n"
        'username = "carol"\n'
        'email = "carol@example.com"\n'
        'password = "carol-password"\n'
        'realm_roles = ["app-user"]\n'
        'attributes = { tenant_id = ["t-042"], site = ["lyon"] }\n'
    )
    async with StandInServer(fake):
        env = {"KEYCLOAK_URL": fake.issuer_base, "KEYCLOAK_ADMIN_USER": "admin"}
        env["KEYCLOAK_ADMIN_PASSWORD"] = "admin"
        args = ["keycloak", "apply", "--file", str(overlay), "--allow-seed-users"]
        # The command runs its own event loop: give it a thread, as a shell would a process.
        result = await asyncio.to_thread(
            CliRunner().invoke, main, args, env=env, catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        yield fake


@pytest.fixture
async def gateway(
    applied: FakeKeycloak, base_env: dict[str, str]
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The service built by `create_app` against the applied realm."""
    settings = load_settings({**base_env, "AUTH_OIDC_ISSUER": applied.issuer}, env_file=False)
    app = create_app(settings, configure_logs=False)
    async with AsyncTestClient(app, base_url="http://auth.test") as client:
        await eventually(lambda: applied.requests["jwks"] > 0, "the service loaded the JWKS")
        for _ in range(200):  # bounded poll: ready means IdP keys and revocation sync are in
            if (await client.get("/health/ready")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the service never became ready")
        yield client


async def password_token(fake: FakeKeycloak, username: str) -> str:
    """A real password grant at the applied realm's token endpoint (client acme-web)."""
    form = {"grant_type": "password", "client_id": "acme-web", "scope": "openid"}
    form |= {"username": username, "password": f"{username}-password"}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{fake.issuer}/protocol/openid-connect/token", data=form)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def test_applied_attribute_becomes_the_tenant_header_and_meets_require_claims(
    applied: FakeKeycloak, gateway: AsyncTestClient[Litestar]
) -> None:
    """carol's tenant_id, declared in the file's user profile and mapped by its mapper, is
    `X-Auth-Tenant` for the gateway; her own tenant's path passes the require_claims rule, another
    tenant's is 403 claim_mismatch."""
    token = await password_token(applied, "carol")
    allowed = await auth_request(gateway, token=token, url="https://app.test/tenants/t-042/x")
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["x-auth-tenant"] == "t-042"
    assert allowed.headers["x-auth-site"] == "lyon"
    assert allowed.headers["x-auth-user"] == "carol"

    other = await auth_request(gateway, token=token, url="https://app.test/tenants/t-001/x")
    assert other.status_code == 403
    assert other.json()["reason"] == "claim_mismatch"
