"""Static checks of docker-compose.yml, the Keycloak realm import, the Dockerfile and the
nginx gateway config: they describe the same topology as `auth-service dev` (CONTRACT §11)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
import yaml

from auth_service.config import Settings, env_name, load_settings
from auth_service.devstack import (
    NGINX_DIR,
    DevError,
    find_nginx,
    nginx_command,
    render_nginx,
    render_template,
)
from tests.fakes.keycloak import FakeKeycloak

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
ROLES = {
    "idp": "keycloak",
    "postgres": "postgres",
    "redis": "redis",
    "migrate": "migrate",
    "auth-service": "auth-service",
    "gateway": "gateway",
    "demo": "demo",
}
"""Role in the topology → compose service name (`auth-service dev` runs the same roles)."""
UPPER_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::[^}]*)?\}")
ONE_SHOT = {"keycloak-setup"}
"""Compose services that run once and exit (no role in the long-running topology)."""


def _volume(service: str, target: str) -> Path:
    for spec in SERVICES[service].get("volumes", []):
        source, _, rest = spec.partition(":")
        if rest.split(":")[0] == target:
            return ROOT / source
    raise AssertionError(f"{service} mounts nothing at {target}")


def _realm() -> dict[str, Any]:
    """The mounted realm import with its placeholders filled from the keycloak service's
    environment, as Keycloak's ``--import-realm`` does."""
    source = _volume("keycloak", "/opt/keycloak/data/import/realm-acme.json")
    env = {k: str(v) for k, v in SERVICES["keycloak"]["environment"].items()}
    text = UPPER_PLACEHOLDER.sub(lambda m: json.dumps(env[m.group(1)])[1:-1], source.read_text())
    realm: dict[str, Any] = json.loads(text)
    return realm


class TestCompose:
    def test_services_are_the_dev_topology_roles(self) -> None:
        """Exactly one compose service per role of the `make dev` topology."""
        assert set(SERVICES) - ONE_SHOT == set(ROLES.values())

    def test_auth_service_gets_every_required_setting_and_they_load(self) -> None:
        """Every required AUTH_* setting is provided and the whole environment validates."""
        env = {k: str(v) for k, v in SERVICES["auth-service"]["environment"].items()}
        required = [env_name(f.name) for f in msgspec.structs.fields(Settings) if f.required]
        assert [name for name in required if name not in env] == []
        settings = load_settings(env, env_file=False)
        assert settings.oidc_issuer == "http://keycloak:8180/realms/acme"
        assert urlsplit(settings.database_url).hostname == "postgres"
        assert urlsplit(settings.redis_url).hostname == "redis"
        assert set(settings.audiences) >= {"orders-api", "auth-service"}

    def test_auth_service_waits_for_healthy_dependencies_and_migrates_first(self) -> None:
        """auth-service starts after keycloak, postgres and redis are healthy and after the
        one-shot migrate service succeeded; it only serves."""
        service = SERVICES["auth-service"]
        for dep in ("keycloak", "postgres", "redis"):
            assert service["depends_on"][dep] == {"condition": "service_healthy"}
            assert SERVICES[dep]["healthcheck"]["test"]
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        migrate = SERVICES["migrate"]
        assert migrate["command"] == ["auth-service", "migrate"]
        assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert migrate["build"] == service["build"]
        command = " ".join(service["command"])
        assert command.startswith("auth-service serve") and "migrate" not in command
        assert "--host 0.0.0.0" in command
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert "health/ready" in " ".join(service["healthcheck"]["test"])

    def test_gateway_waits_for_auth_service_and_demo(self) -> None:
        """nginx starts last: after auth-service and the demo are healthy."""
        gateway = SERVICES["gateway"]
        for dep in ("auth-service", "demo"):
            assert gateway["depends_on"][dep] == {"condition": "service_healthy"}
            assert SERVICES[dep]["healthcheck"]["test"]
        assert "8080:8080" in gateway["ports"]

    def test_gateway_mounts_gateway_config_nginx_where_the_includes_expect_it(self) -> None:
        """gateway_config/nginx is mounted at /etc/nginx/auth-service (the include prefix) and
        the template renders with the compose environment."""
        assert _volume("gateway", "/etc/nginx/auth-service") == NGINX_DIR
        template = _volume("gateway", "/etc/nginx/templates/default.conf.template")
        assert template == NGINX_DIR / "gateway.conf.template"
        text = template.read_text()
        assert "include auth-service/auth-service.conf;" in text
        env = {k: str(v) for k, v in SERVICES["gateway"]["environment"].items()}
        rendered = render_template(text, env)
        assert "server auth-service:8000" in rendered
        assert "server demo:8000" in rendered
        assert "listen 8080;" in rendered

    def test_keycloak_imports_the_realm_with_health_on_the_management_port(self) -> None:
        """start-dev --import-realm, health on :9000, both admin bootstrap spellings, and a
        KC_HOSTNAME that makes the issuer auth-service expects."""
        kc = SERVICES["keycloak"]
        env = {k: str(v) for k, v in kc["environment"].items()}
        assert kc["image"].startswith("quay.io/keycloak/keycloak:26")
        assert kc["command"] == ["start-dev", "--import-realm"]
        assert env["KC_HEALTH_ENABLED"] == "true"
        assert "/dev/tcp/127.0.0.1/9000" in " ".join(kc["healthcheck"]["test"])
        for name in (
            "KC_BOOTSTRAP_ADMIN_USERNAME",
            "KC_BOOTSTRAP_ADMIN_PASSWORD",
            "KEYCLOAK_ADMIN",
            "KEYCLOAK_ADMIN_PASSWORD",
        ):
            assert env[name]
        issuer = SERVICES["auth-service"]["environment"]["AUTH_OIDC_ISSUER"]
        assert issuer == f"{env['KC_HOSTNAME']}/realms/{_realm()['realm']}"
        assert urlsplit(issuer).port == int(env["KC_HTTP_PORT"])
        assert f"{env['KC_HTTP_PORT']}:{env['KC_HTTP_PORT']}" in kc["ports"]

    def test_every_realm_placeholder_is_set_for_keycloak(self) -> None:
        """Each ${VAR} in the realm file has a value in the keycloak service environment."""
        text = _volume("keycloak", "/opt/keycloak/data/import/realm-acme.json").read_text()
        placeholders = set(UPPER_PLACEHOLDER.findall(text))
        assert placeholders
        env = SERVICES["keycloak"]["environment"]
        assert sorted(p for p in placeholders if p not in env) == []
        client_secret = SERVICES["auth-service"]["environment"]["AUTH_OIDC_CLIENT_SECRET"]
        assert env["AUTH_SERVICE_CLIENT_SECRET"] == client_secret


class TestTwoDsns:
    """migrate connects as the database owner, the service as the least-privilege role."""

    @staticmethod
    def _env(service: str) -> dict[str, str]:
        return {k: str(v) for k, v in SERVICES[service]["environment"].items()}

    def test_migrate_uses_the_owner_and_serve_a_member_of_the_runtime_role(self) -> None:
        """The owner's DSN is only in the migrate service; the init script makes the owner
        a plain owner (no CREATEROLE) and the runtime user a member of auth_app."""
        from auth_service.migrations import RUNTIME_ROLE

        migrate, serve = self._env("migrate"), self._env("auth-service")
        owner = urlsplit(migrate["AUTH_MIGRATE_DATABASE_URL"])
        runtime = urlsplit(serve["AUTH_DATABASE_URL"])
        assert "AUTH_MIGRATE_DATABASE_URL" not in serve
        assert migrate["AUTH_DATABASE_URL"] == serve["AUTH_DATABASE_URL"]
        assert owner.password is not None and owner.password not in str(serve)
        assert (owner.hostname, owner.path) == (runtime.hostname, runtime.path)
        assert owner.username != runtime.username
        load_settings(migrate, env_file=False)
        init = _volume("postgres", "/docker-entrypoint-initdb.d/10-auth-service.sql").read_text()
        db = owner.path.lstrip("/")
        assert f"CREATE DATABASE {db} OWNER {owner.username};" in init
        assert re.search(rf"CREATE ROLE {owner.username} LOGIN .*NOSUPERUSER NOCREATEROLE", init)
        assert re.search(
            rf"CREATE ROLE {runtime.username} LOGIN [^;]*IN ROLE {RUNTIME_ROLE};", init, re.S
        )

    def test_dockerfile_serves_only(self) -> None:
        """The image's default command serves; migrating is a separate run with the owner DSN."""
        text = (ROOT / "deploy" / "Dockerfile").read_text()
        (cmd,) = re.findall(r"^CMD (.+)$", text, re.M)
        assert json.loads(cmd) == ["auth-service", "serve", "--host", "0.0.0.0", "--port", "8000"]
        assert "AUTH_MIGRATE_DATABASE_URL" in text


class TestRealm:
    def test_roles_clients_and_mappers_the_service_needs(self) -> None:
        """Realm acme: the service's roles, the confidential PKCE client with back-channel logout,
        orders-api bearer-only, tenant_id and audience mappers, tenant_id in the user profile."""
        realm = _realm()
        assert realm["realm"] == "acme"
        roles = {r["name"] for r in realm["roles"]["realm"]}
        assert roles >= {
            "auth-admin",
            "auth-auditor",
            "token-introspector",
            "orders-writer",
            "app-user",
        }
        clients = {c["clientId"]: c for c in realm["clients"]}
        auth = clients["auth-service"]
        assert auth["publicClient"] is False
        assert auth["frontchannelLogout"] is False
        assert auth["attributes"]["pkce.code.challenge.method"] == "S256"
        assert auth["attributes"]["backchannel.logout.session.required"] == "true"
        public_url = SERVICES["auth-service"]["environment"]["AUTH_PUBLIC_URL"]
        assert f"{public_url}/auth/callback" in auth["redirectUris"]
        logout = urlsplit(auth["attributes"]["backchannel.logout.url"])
        assert (logout.hostname, logout.port, logout.path) == (
            "auth-service",
            8000,
            "/auth/backchannel-logout",
        )
        assert clients["orders-api"]["bearerOnly"] is True
        claims = {
            m["config"]["user.attribute"]: m["config"]["claim.name"]
            for m in auth["protocolMappers"]
            if m["protocolMapper"] == "oidc-usermodel-attribute-mapper"
        }
        assert claims["tenant_id"] == "tenant_id"
        audiences = {
            m["config"]["included.client.audience"]
            for m in auth["protocolMappers"]
            if m["protocolMapper"] == "oidc-audience-mapper"
        }
        assert audiences == {"orders-api", "auth-service"}
        assert "clientScopes" not in realm  # would suppress Keycloak's built-in scopes
        (profile,) = realm["components"]["org.keycloak.userprofile.UserProfileProvider"]
        config = json.loads(profile["config"]["kc.user.profile.config"][0])
        assert "tenant_id" in {a["name"] for a in config["attributes"]}

    def test_seed_users_match_the_keycloak_stand_in(self) -> None:
        """alice, bob and admin have the stand-in's roles, e-mail and tenant (dev == compose)."""
        fake = FakeKeycloak()
        users = {u["username"]: u for u in _realm()["users"]}
        assert set(users) == set(fake.users)
        for name, seeded in fake.users.items():
            user = users[name]
            assert set(user["realmRoles"]) - {"default-roles-acme"} == set(seeded.realm_roles)
            assert user["email"] == seeded.email
            assert user.get("clientRoles", {}) == seeded.client_roles
            tenant = seeded.attributes.get("tenant_id")
            assert user.get("attributes", {}).get("tenant_id") == ([tenant] if tenant else None)
            assert all(c["temporary"] is False for c in user["credentials"])
        env = SERVICES["keycloak"]["environment"]
        assert env["ALICE_PASSWORD"] == fake.users["alice"].password


class TestDockerfile:
    def test_installs_pinned_hashes_then_the_package_without_deps(self) -> None:
        """python:3.11-slim, `--require-hashes -r requirements/main.txt`, then `--no-deps`."""
        text = (ROOT / "deploy" / "Dockerfile").read_text()
        assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
        hashes = text.index("--require-hashes -r requirements/main.txt")
        assert hashes < text.index("--no-deps")
        assert "deploy/demo" in text
        assert re.search(r"^USER \w+", text, re.M)


class TestNginxConfig:
    def test_rendered_config_passes_nginx_t(self, tmp_path: Path) -> None:
        """`nginx -t` accepts the config `auth-service dev` and the e2e tests render."""
        try:
            nginx = find_nginx()
        except DevError as exc:
            pytest.fail(str(exc), pytrace=False)
        conf = render_nginx(
            tmp_path, listen="127.0.0.1:1", auth_upstream="127.0.0.1:2", demo_upstream="[::1]:3"
        )
        done = subprocess.run(
            nginx_command(nginx, conf, test=True), capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr

    def test_every_stripped_header_is_also_set_from_the_check(self) -> None:
        """strip-identity.conf and protect.conf list the same X-Auth-* headers, and each one the
        check may return is taken from the subrequest."""
        header = re.compile(r"proxy_set_header\s+(X-Auth-[\w-]+)\s+(\S+);")
        stripped = dict(header.findall((NGINX_DIR / "strip-identity.conf").read_text()))
        protect = (NGINX_DIR / "protect.conf").read_text()
        upstream = dict(header.findall(protect))
        assert set(stripped.values()) == {'""'}
        assert set(stripped) == set(upstream)
        for name, value in upstream.items():
            if name == "X-Auth-Redirect":
                assert value == '""'
                continue
            var = value.lstrip("$")
            wanted = f"$upstream_http_{name.lower().replace('-', '_')}"
            assert re.search(rf"auth_request_set\s+\${var}\s+{re.escape(wanted)};", protect)

    def test_template_renderer_fills_placeholders_and_leaves_nginx_variables(self) -> None:
        """${NAME} is replaced, $nginx_variable untouched, a missing value is an error."""
        out = render_template("server ${UP}; set $x $request_id; # ${DOC}", {"UP": "a:1"})
        assert out == "server a:1; set $x $request_id; # ${DOC}"
        with pytest.raises(DevError, match="MISSING"):
            render_template("listen ${MISSING};", {})


class TestKeycloakSetup:
    def test_the_committed_realm_import_is_exported_from_the_desired_state(self) -> None:
        """keycloak/realm-acme.json is exactly what `auth-service keycloak export` prints for
        keycloak/acme-dev.toml: the compose import and the desired state are one realm."""
        from auth_service.keycloak_admin import load_desired_state
        from auth_service.keycloak_admin.cli import export_json

        committed = _volume("keycloak", "/opt/keycloak/data/import/realm-acme.json")
        state = load_desired_state(ROOT / "keycloak" / "acme-dev.toml", env=None)
        assert committed.read_text() == export_json(state), (
            "keycloak/realm-acme.json is out of date: run `auth-service keycloak export"
            " --file keycloak/acme-dev.toml --output keycloak/realm-acme.json`"
        )

    def test_setup_applies_the_mounted_file_once_keycloak_is_healthy(self) -> None:
        """keycloak-setup runs `keycloak apply` on the mounted overlay after Keycloak is healthy,
        with the bootstrap admin, and auth-service starts only after it succeeded."""
        setup = SERVICES["keycloak-setup"]
        command = setup["command"]
        assert command[:3] == ["auth-service", "keycloak", "apply"]
        mounted = _volume("keycloak-setup", "/etc/keycloak")
        file = command[command.index("--file") + 1]
        assert (mounted / Path(file).relative_to("/etc/keycloak")).is_file()
        assert "--allow-seed-users" in command
        assert setup["depends_on"]["keycloak"]["condition"] == "service_healthy"
        waits = SERVICES["auth-service"]["depends_on"]["keycloak-setup"]["condition"]
        assert waits == "service_completed_successfully"
        env = {k: str(v) for k, v in setup["environment"].items()}
        kc = {k: str(v) for k, v in SERVICES["keycloak"]["environment"].items()}
        assert urlsplit(env["KEYCLOAK_URL"]).hostname == "keycloak"
        assert urlsplit(env["KEYCLOAK_URL"]).port == int(kc["KC_HTTP_PORT"])
        assert env["KEYCLOAK_ADMIN_USER"] == kc["KC_BOOTSTRAP_ADMIN_USERNAME"]
        assert env["KEYCLOAK_ADMIN_PASSWORD"] == kc["KC_BOOTSTRAP_ADMIN_PASSWORD"]

    def test_setup_and_import_fill_the_placeholders_with_the_same_values(self) -> None:
        """Every placeholder of the desired state has one value for the import (keycloak) and
        for apply (keycloak-setup), so both describe the same realm."""
        text = "\n".join(
            line
            for path in (ROOT / "keycloak").glob("*.toml")
            for line in path.read_text().splitlines()
            if not line.lstrip().startswith("#")
        )
        placeholders = set(UPPER_PLACEHOLDER.findall(text))
        assert {"REALM_PUBLIC_URL", "AUTH_SERVICE_CLIENT_SECRET"} <= placeholders
        setup = SERVICES["keycloak-setup"]["environment"]
        kc = SERVICES["keycloak"]["environment"]
        assert {p: setup.get(p) for p in placeholders} == {p: kc.get(p) for p in placeholders}
        assert all(setup.get(p) is not None for p in placeholders)
