"""The stand-in's admin REST API, driven by python-keycloak (KEYCLOAK.md §3.3, §6.3, §6.6), and
"one realm truth": the seeded realm is the desired-state file, and admin writes reach tokens."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from keycloak import (
    KeycloakAdmin,
    KeycloakAuthenticationError,
    KeycloakGetError,
    KeycloakOpenIDConnection,
    KeycloakPostError,
)

from auth_service.keycloak_admin import load_desired_state
from tests.fakes.keycloak import FakeKeycloak, StandInServer

ROOT = Path(__file__).resolve().parents[3]


def claims_of(token: str) -> dict[str, Any]:
    """The payload of a JWS (the signature is checked elsewhere)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


@pytest.fixture
def seeded() -> Iterator[tuple[FakeKeycloak, KeycloakAdmin]]:
    """The default stand-in (realm from keycloak/acme-dev.toml) and an admin client for it."""
    fake = FakeKeycloak()
    with StandInServer(fake) as server:
        connection = KeycloakOpenIDConnection(
            server_url=server.base_url + "/",
            username="admin",
            password="admin",
            realm_name="acme",
            user_realm_name="master",
        )
        yield fake, KeycloakAdmin(connection=connection)


class TestAdminApi:
    def test_creates_answer_201_with_location_and_duplicates_409(
        self, seeded: tuple[FakeKeycloak, KeycloakAdmin]
    ) -> None:
        """python-keycloak reads the new id from Location; a duplicate is 409 errorMessage."""
        fake, admin = seeded
        uuid = admin.create_client({"clientId": "reports-api", "bearerOnly": True})
        assert admin.get_client(uuid)["clientId"] == "reports-api"
        with pytest.raises(KeycloakPostError) as duplicate:
            admin.create_client({"clientId": "reports-api"})
        assert duplicate.value.response_code == 409
        assert json.loads(duplicate.value.response_body) == {
            "errorMessage": "Client reports-api already exists"
        }
        assert admin.create_realm_role({"name": "viewer"}) == "viewer"
        assert admin.create_realm_role({"name": "viewer"}, skip_exists=True) == "viewer"

    def test_unknown_ids_are_404_with_keycloak_bodies(
        self, seeded: tuple[FakeKeycloak, KeycloakAdmin]
    ) -> None:
        """Unknown user, client and role: 404 with ``{"error": ...}``."""
        _, admin = seeded
        for call, body in (
            (lambda: admin.get_user("nope"), {"error": "User not found"}),
            (lambda: admin.get_client("nope"), {"error": "Could not find client"}),
            (lambda: admin.get_realm_role("nope"), {"error": "Could not find role"}),
        ):
            with pytest.raises(KeycloakGetError) as missing:
                call()
            assert missing.value.response_code == 404
            assert json.loads(missing.value.response_body) == body

    def test_admin_calls_need_a_master_realm_token(
        self, seeded: tuple[FakeKeycloak, KeycloakAdmin]
    ) -> None:
        """No bearer: 401. Wrong admin password: python-keycloak raises its authentication
        error from the master token endpoint."""
        fake, _ = seeded
        anonymous = httpx.get(f"{fake.issuer_base}/admin/realms/acme/clients")
        assert anonymous.status_code == 401
        connection = KeycloakOpenIDConnection(
            server_url=fake.issuer_base + "/",
            username="admin",
            password="wrong",
            realm_name="acme",
            user_realm_name="master",
        )
        with pytest.raises(KeycloakAuthenticationError):
            KeycloakAdmin(connection=connection).get_clients()

    def test_user_put_replaces_the_user_and_undeclared_attributes_are_dropped(
        self, seeded: tuple[FakeKeycloak, KeycloakAdmin]
    ) -> None:
        """KC 24.0.4+: a partial PUT clears omitted fields; an attribute the user profile does
        not declare is dropped with a 2xx (never stored, never in tokens)."""
        fake, admin = seeded
        uid = admin.get_user_id("bob")
        assert uid is not None
        admin.update_user(uid, {"email": "bob@new.example", "attributes": {"shoe_size": ["44"]}})
        user = admin.get_user(uid)
        assert user["email"] == "bob@new.example"
        assert "firstName" not in user
        assert "attributes" not in user
        assert "tenant_id" not in fake.users["bob"].attributes

    def test_writes_reach_tokens(self, seeded: tuple[FakeKeycloak, KeycloakAdmin]) -> None:
        """A declared attribute, its mapper and an audience mapper added through the admin API
        show up in the next token; the write is counted."""
        fake, admin = seeded
        before = len(fake.admin.writes)
        profile = admin.get_realm_users_profile()
        profile["attributes"].append({"name": "region", "permissions": {"view": ["admin"]}})
        admin.update_realm_users_profile(profile)
        uid = admin.get_user_id("bob")
        assert uid is not None
        user = admin.get_user(uid)
        user["attributes"] = {**user.get("attributes", {}), "region": ["emea"]}
        admin.update_user(uid, user)
        web = admin.get_client_id("acme-web")
        assert web is not None
        admin.add_mapper_to_client(
            web,
            {
                "name": "region",
                "protocol": "openid-connect",
                "protocolMapper": "oidc-usermodel-attribute-mapper",
                "config": {"user.attribute": "region", "claim.name": "geo.region"},
            },
        )
        admin.add_mapper_to_client(
            web,
            {
                "name": "aud-reports",
                "protocol": "openid-connect",
                "protocolMapper": "oidc-audience-mapper",
                "config": {"included.client.audience": "reports"},
            },
        )
        claims = claims_of(fake.mint_access_token("bob", client_id="acme-web"))
        assert claims["geo"] == {"region": "emea"}
        assert claims["tenant_id"] == "t-002"
        assert "reports" in claims["aud"]
        assert len(fake.admin.writes) == before + 4

    def test_lists_page_with_first_and_max(
        self, seeded: tuple[FakeKeycloak, KeycloakAdmin]
    ) -> None:
        """``first``/``max`` page lists, as python-keycloak's fetch-all loop expects."""
        fake, admin = seeded
        for i in range(105):
            fake.admin._add_role(f"bulk-{i:03}", None)
        roles = admin.get_realm_roles()
        assert len([r for r in roles if r["name"].startswith("bulk-")]) == 105
        page = httpx.get(
            f"{fake.issuer_base}/admin/realms/acme/roles",
            params={"first": 0, "max": 2},
            headers={"Authorization": f"Bearer {next(iter(fake.admin.tokens))}"},
        ).json()
        assert len(page) == 2


class TestOneRealmTruth:
    def test_seeded_tokens_carry_what_the_file_mappers_say(self) -> None:
        """For every seed user of keycloak/acme-dev.toml, an acme-web token carries each
        attribute mapper's claim (dotted names nest) with the user's value, and `aud` holds
        every audience mapper's client."""
        state = load_desired_state(ROOT / "keycloak" / "acme-dev.toml", env={})
        fake = FakeKeycloak()
        web = state.client("acme-web")
        assert web is not None
        for user in state.users:
            claims = claims_of(fake.mint_access_token(user.username, client_id="acme-web"))
            for mapper in web.mappers:
                if mapper.type == "audience":
                    assert mapper.audience in claims["aud"]
                if mapper.type != "user-attribute" or mapper.attribute not in user.attributes:
                    continue
                value: Any = claims
                for part in (mapper.claim or "").split("."):
                    value = value[part]
                assert value == user.attributes[mapper.attribute][0]
            assert set(user.realm_roles) <= set(claims["realm_access"]["roles"])
            assert claims["preferred_username"] == user.username

    def test_an_empty_keycloak_has_no_realm_until_created(self) -> None:
        """``realm_file=None``: the admin API knows no realm; no users or clients are seeded."""
        fake = FakeKeycloak(realm_file=None)
        assert fake.users == {} and fake.clients == {}
        assert not fake.admin.exists

    def test_hardcoded_claim_mapper_reaches_the_clients_tokens(
        self, seeded: tuple[FakeKeycloak, KeycloakAdmin]
    ) -> None:
        """A hardcoded-claim mapper added to auth-service appears in its service-account token
        and in user tokens it gets, typed by ``jsonType.label``; other clients do not get it."""
        fake, admin = seeded
        uuid = admin.get_client_id("auth-service")
        assert uuid is not None
        admin.add_mapper_to_client(
            uuid,
            {
                "name": "svc",
                "protocol": "openid-connect",
                "protocolMapper": "oidc-hardcoded-claim-mapper",
                "config": {"claim.name": "svc.tier", "claim.value": "2", "jsonType.label": "int"},
            },
        )
        assert claims_of(fake.mint_access_token("alice", client_id="auth-service"))["svc"] == {
            "tier": 2
        }
        assert "svc" not in claims_of(fake.mint_access_token("alice", client_id="acme-web"))
