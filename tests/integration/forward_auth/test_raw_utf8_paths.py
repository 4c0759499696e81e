"""A path sent as raw UTF-8 bytes is decided as the same path its percent-encoding names.

Upstreams (nginx, Envoy, Traefik) read ``/café/x`` sent as raw bytes and
``/caf%C3%A9/x`` alike. Reading the header bytes as latin-1 made the raw form
``/cafÃ©/x``, which missed the rule written for ``/café/**`` and fell through to
a broader one: a user without the required role was let in.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.fakes.keycloak import FakeKeycloak

POLICY = """
[[rules]]
name = "caf\u00e9 admins"
paths = ["/caf\u00e9/**"]
require_roles = ["auth-admin"]

[[rules]]
name = "signed in"
paths = ["/**"]
allow = "authenticated"
"""
RAW = "/caf\u00e9/secret".encode()


@pytest.fixture
def idp_env(base_env: dict[str, str], idp: FakeKeycloak, tmp_path: Path) -> dict[str, str]:
    """The stand-in IdP and a policy with a non-ASCII literal."""
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY, encoding="utf-8")
    return {**base_env, "AUTH_OIDC_ISSUER": idp.issuer, "AUTH_POLICY_FILE": str(policy)}


async def test_raw_utf8_path_meets_the_rule_of_its_decoded_form(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """bob lacks auth-admin: raw and percent-encoded ``/café/secret`` are both 403."""
    bob = f"Bearer {idp.mint_access_token('bob')}".encode()
    doors = {
        "forward-auth": (
            "/authz/forward-auth",
            {
                b"x-forwarded-method": b"GET",
                b"x-forwarded-proto": b"https",
                b"x-forwarded-host": b"app.test",
            },
            b"x-forwarded-uri",
            b"",
        ),
        "auth-request": (
            "/authz/auth-request",
            {b"x-original-method": b"GET"},
            b"x-original-url",
            b"https://app.test",
        ),
    }
    for name, (endpoint, base, header, prefix) in doors.items():
        for path in (RAW, b"/caf%C3%A9/secret"):
            headers = {**base, header: prefix + path, b"authorization": bob}
            r = await service.get(endpoint, headers=headers)
            assert r.status_code == 403, (name, path, r.status_code, r.text)
            assert r.json()["reason"] == "missing_role"
            assert "x-auth-subject" not in r.headers
