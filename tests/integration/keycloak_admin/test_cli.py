"""`auth-service keycloak plan|apply|check|export` against the admin-API stand-in over real HTTP
(python-keycloak's async client on one side, the stand-in's admin REST API on the other)."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from auth_service.cli import main
from tests.fakes.keycloak import FakeKeycloak, StandInServer

ROOT = Path(__file__).resolve().parents[3]
BASE = ROOT / "keycloak" / "acme.toml"
DEV = ROOT / "keycloak" / "acme-dev.toml"


@pytest.fixture
def empty() -> Iterator[FakeKeycloak]:
    """A Keycloak with no realm yet, served over HTTP."""
    fake = FakeKeycloak(realm_file=None)
    with StandInServer(fake):
        yield fake


@pytest.fixture
def env(empty: FakeKeycloak) -> dict[str, str]:
    """Admin credentials of the stand-in's master realm."""
    return {
        "KEYCLOAK_URL": empty.issuer_base,
        "KEYCLOAK_ADMIN_USER": "admin",
        "KEYCLOAK_ADMIN_PASSWORD": "admin",
    }


def run(env: dict[str, str], *args: str) -> Result:
    """Run ``auth-service keycloak ...`` in-process with ``env`` set."""
    return CliRunner().invoke(main, ["keycloak", *args], env=env, catch_exceptions=False)


def changed_lines(result: Result) -> list[str]:
    """The object lines of a printed plan (create/update/delete)."""
    return [line for line in result.stdout.splitlines() if line[:2] in ("+ ", "~ ", "- ")]


def copy_files(tmp_path: Path) -> Path:
    """The shipped desired state copied into ``tmp_path`` (to edit); returns the overlay."""
    for source in (BASE, DEV):
        (tmp_path / source.name).write_text(source.read_text())
    return tmp_path / DEV.name


class TestApply:
    def test_apply_on_an_empty_keycloak_creates_everything_and_a_second_run_writes_nothing(
        self, empty: FakeKeycloak, env: dict[str, str]
    ) -> None:
        """plan lists creations and writes nothing; apply creates the realm, profile, roles,
        clients with mappers, users with roles and attributes; the second apply prints
        "No changes" and sends no write request (counted at the stand-in)."""
        planned = run(env, "plan", "--file", str(DEV), "--allow-seed-users")
        assert planned.exit_code == 0, planned.output
        assert "+ create realm acme" in planned.stdout
        assert "+ create client auth-service" in planned.stdout
        assert "+ create user alice" in planned.stdout
        assert empty.admin.writes == []
        assert not empty.admin.exists

        applied = run(env, "apply", "--file", str(DEV), "--allow-seed-users")
        assert applied.exit_code == 0, applied.output
        store = empty.admin
        assert store.exists
        assert {"app-user", "auth-admin", "token-introspector"} <= set(store.roles)
        clients = {c["clientId"]: c for c in store.clients.values()}
        auth = clients["auth-service"]
        assert auth["attributes"]["pkce.code.challenge.method"] == "S256"
        assert auth["secret"] == "auth-service-secret"
        assert {m["name"] for m in auth["protocolMappers"]} == {
            "tenant_id",
            "site",
            "audience-orders-api",
            "audience-auth-service",
        }
        orders = clients["orders-api"]
        assert set(store.client_roles[orders["id"]]) == {"read", "write"}
        assert "tenant_id" in store.declared()
        alice = empty.users["alice"]
        assert alice.attributes == {"tenant_id": "t-001", "org": {"site": "berlin"}}
        assert set(alice.realm_roles) == {"app-user", "orders-writer", "token-introspector"}
        assert alice.client_roles == {"orders-api": ["write"]}
        assert alice.password == "alice-password"

        writes = len(store.writes)
        again = run(env, "apply", "--file", str(DEV), "--allow-seed-users")
        assert again.exit_code == 0, again.output
        assert "No changes" in again.stdout
        assert len(store.writes) == writes
        assert run(env, "check", "--file", str(DEV), "--allow-seed-users").exit_code == 0
        assert len(store.writes) == writes

    def test_editing_one_mapper_plans_exactly_that_change(
        self, empty: FakeKeycloak, env: dict[str, str], tmp_path: Path
    ) -> None:
        """Change one mapper's claim in the file: plan shows that mapper and its field only;
        check exits 1; apply fixes it; check exits 0."""
        overlay = copy_files(tmp_path)
        assert run(env, "apply", "--file", str(overlay), "--allow-seed-users").exit_code == 0
        base = tmp_path / BASE.name
        base.write_text(base.read_text().replace('claim = "org.site"', 'claim = "org.place"', 1))

        planned = run(env, "plan", "--file", str(overlay), "--allow-seed-users")
        assert planned.exit_code == 0, planned.output
        assert changed_lines(planned) == ["~ update mapper client auth-service / site"]
        assert "    ~ config.claim.name: 'org.site' -> 'org.place'" in planned.stdout
        assert "Plan: 0 to create, 1 to update, 0 to delete" in planned.stdout

        drift = run(env, "check", "--file", str(overlay), "--allow-seed-users")
        assert drift.exit_code == 1
        assert run(env, "apply", "--file", str(overlay), "--allow-seed-users").exit_code == 0
        assert run(env, "check", "--file", str(overlay), "--allow-seed-users").exit_code == 0

    def test_check_detects_drift_made_in_keycloak_and_apply_repairs_it(
        self, empty: FakeKeycloak, env: dict[str, str]
    ) -> None:
        """Someone edits the realm by hand (lockout off, a redirect URI added): check exits 1
        naming both; apply puts the file's values back; check exits 0."""
        assert run(env, "apply", "--file", str(BASE)).exit_code == 0
        empty.admin.settings["bruteForceProtected"] = False
        auth = next(c for c in empty.admin.clients.values() if c["clientId"] == "auth-service")
        auth["redirectUris"] = [*auth["redirectUris"], "https://evil.example/*"]

        drift = run(env, "check", "--file", str(BASE))
        assert drift.exit_code == 1
        assert "~ update realm acme" in drift.stdout
        assert "bruteForceProtected: False -> True" in drift.stdout
        assert "~ update client auth-service" in drift.stdout

        assert run(env, "apply", "--file", str(BASE)).exit_code == 0
        assert empty.admin.settings["bruteForceProtected"] is True
        assert "https://evil.example/*" not in auth["redirectUris"]
        assert run(env, "check", "--file", str(BASE)).exit_code == 0

    def test_objects_the_file_does_not_manage_are_kept_unless_prune(
        self, empty: FakeKeycloak, env: dict[str, str]
    ) -> None:
        """A hand-made mapper and realm role survive apply; apply --prune deletes them."""
        assert run(env, "apply", "--file", str(BASE)).exit_code == 0
        auth = next(c for c in empty.admin.clients.values() if c["clientId"] == "auth-service")
        auth["protocolMappers"].append(
            {"id": "m-extra", "name": "extra", "protocolMapper": "oidc-hardcoded-claim-mapper"}
        )
        empty.admin._add_role("legacy", "hand-made")

        kept = run(env, "apply", "--file", str(BASE))
        assert kept.exit_code == 0
        assert "No changes" in kept.stdout
        assert "legacy" in empty.admin.roles
        assert run(env, "check", "--file", str(BASE)).exit_code == 0
        assert run(env, "check", "--file", str(BASE), "--prune").exit_code == 1

        pruned = run(env, "apply", "--file", str(BASE), "--prune")
        assert pruned.exit_code == 0, pruned.output
        assert "- delete mapper client auth-service / extra" in pruned.stdout
        assert "- delete realm-role legacy" in pruned.stdout
        assert "legacy" not in empty.admin.roles
        assert {m["name"] for m in auth["protocolMappers"]} == {
            "tenant_id",
            "site",
            "audience-orders-api",
            "audience-auth-service",
        }
        assert "offline_access" in empty.admin.roles  # Keycloak's own roles are never pruned

    def test_user_update_sends_the_whole_user_and_keeps_what_the_file_does_not_set(
        self, empty: FakeKeycloak, env: dict[str, str]
    ) -> None:
        """PUT users replaces the whole user (KC 24.0.4+): apply reads, merges and sends all of
        it, so a changed e-mail does not clear alice's names or her other attributes."""
        assert run(env, "apply", "--file", str(DEV), "--allow-seed-users").exit_code == 0
        uid = empty.users["alice"].sub
        empty.admin.users[uid]["email"] = "old@example.com"
        result = run(env, "apply", "--file", str(DEV), "--allow-seed-users")
        assert result.exit_code == 0, result.output
        assert "~ update user alice" in result.stdout
        user = empty.admin.users[uid]
        assert user["email"] == "alice@example.com"
        assert (user["firstName"], user["lastName"]) == ("Alice", "Liddell")
        assert user["attributes"] == {"tenant_id": ["t-001"], "site": ["berlin"]}

    def test_an_interrupted_apply_is_finished_by_running_it_again(
        self, empty: FakeKeycloak, env: dict[str, str]
    ) -> None:
        """Keycloak fails after 7 writes: apply stops with one line and exit 2, leaving a partly
        configured realm; the rerun plans only what is left and check is then in sync."""
        empty.admin.fail_writes_after = 7
        broken = run(env, "apply", "--file", str(DEV), "--allow-seed-users")
        assert broken.exit_code == 2
        assert "Keycloak answered 500" in broken.stderr
        assert len(empty.admin.writes) == 7
        empty.admin.fail_writes_after = None

        rest = run(env, "plan", "--file", str(DEV), "--allow-seed-users")
        assert "+ create realm acme" not in rest.stdout
        assert "+ create user alice" in rest.stdout
        assert run(env, "apply", "--file", str(DEV), "--allow-seed-users").exit_code == 0
        assert run(env, "check", "--file", str(DEV), "--allow-seed-users").exit_code == 0
        assert empty.users["alice"].attributes["tenant_id"] == "t-001"

    def test_the_seeded_stand_in_is_in_sync_with_the_file(self) -> None:
        """One realm truth: the stand-in seeded from keycloak/acme-dev.toml (as `make dev` and
        the tests use it) is what `check` expects: exit 0, nothing written."""
        fake = FakeKeycloak()
        with StandInServer(fake):
            env = {"KEYCLOAK_URL": fake.issuer_base, "KEYCLOAK_ADMIN_USER": "admin"}
            result = run(
                env | {"KEYCLOAK_ADMIN_PASSWORD": "admin"},
                "check",
                "--file",
                str(DEV),
                "--allow-seed-users",
            )
        assert result.exit_code == 0, result.output
        assert "No changes" in result.stdout
        assert fake.admin.writes == []


class TestSecrets:
    def test_generated_secret_is_written_to_a_private_file_and_never_printed(
        self, empty: FakeKeycloak, env: dict[str, str], tmp_path: Path
    ) -> None:
        """Without a secret in the file Keycloak generates one; --write-client-secret writes it
        (mode 0600) for AUTH_OIDC_CLIENT_SECRET_FILE; the output does not contain it."""
        target = tmp_path / "client-secret"
        target.write_text("stale")
        target.chmod(0o644)  # an older, too open file: the secret must not stay readable
        result = run(env, "apply", "--file", str(BASE), "--write-client-secret", str(target))
        assert result.exit_code == 0, result.output
        secret = empty.clients["auth-service"].secret
        assert secret is not None and len(secret) >= 20
        assert target.read_text().strip() == secret
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        assert secret not in result.output

    def test_rotate_secret_generates_a_new_one(
        self, empty: FakeKeycloak, env: dict[str, str], tmp_path: Path
    ) -> None:
        """--rotate-secret asks Keycloak for a new secret and writes the new value."""
        target = tmp_path / "client-secret"
        run(env, "apply", "--file", str(BASE), "--write-client-secret", str(target))
        old = target.read_text().strip()
        rotated = run(
            env,
            "apply",
            "--file",
            str(BASE),
            "--rotate-secret",
            "auth-service",
            "--write-client-secret",
            str(target),
        )
        assert rotated.exit_code == 0, rotated.output
        new = target.read_text().strip()
        assert new != old
        assert new == empty.clients["auth-service"].secret
        assert "(secret, changes)" in rotated.stdout
        assert old not in rotated.output and new not in rotated.output

    def test_a_secret_fixed_in_the_file_is_compared_without_being_shown(
        self, empty: FakeKeycloak, env: dict[str, str]
    ) -> None:
        """A live secret that differs from the file's is an update whose value is hidden."""
        assert run(env, "apply", "--file", str(DEV), "--allow-seed-users").exit_code == 0
        auth = next(c for c in empty.admin.clients.values() if c["clientId"] == "auth-service")
        auth["secret"] = "changed-by-hand"
        drift = run(env, "check", "--file", str(DEV), "--allow-seed-users")
        assert drift.exit_code == 1
        assert "~ secret: (secret, changes)" in drift.stdout
        assert "changed-by-hand" not in drift.output
        assert "auth-service-secret" not in drift.output


class TestErrors:
    def test_bad_admin_credentials_are_one_clear_line_and_exit_2(
        self, empty: FakeKeycloak, env: dict[str, str]
    ) -> None:
        """A wrong admin password: exit 2 and one line on stderr, nothing on stdout."""
        result = run(env | {"KEYCLOAK_ADMIN_PASSWORD": "wrong"}, "plan", "--file", str(BASE))
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1
        assert "refused the admin credentials" in result.stderr
        assert "wrong" not in result.stderr

    def test_service_account_admin_login_works(
        self, empty: FakeKeycloak, env: dict[str, str]
    ) -> None:
        """KEYCLOAK_ADMIN_CLIENT_ID/SECRET (client credentials in master) instead of a user;
        the secret may come from a file."""
        empty.admin.admin_clients["provisioner"] = "s3cret"
        result = run(
            {"KEYCLOAK_URL": env["KEYCLOAK_URL"], "KEYCLOAK_ADMIN_CLIENT_ID": "provisioner"}
            | {"KEYCLOAK_ADMIN_CLIENT_SECRET": "s3cret"},
            "apply",
            "--file",
            str(BASE),
        )
        assert result.exit_code == 0, result.output
        assert empty.admin.exists

    def test_missing_settings_and_unreachable_keycloak_exit_2(self, tmp_path: Path) -> None:
        """No KEYCLOAK_URL, no credentials, nothing listening: one line each, exit 2."""
        nothing = run({"KEYCLOAK_URL": ""}, "plan", "--file", str(BASE))
        assert nothing.exit_code == 2
        assert "KEYCLOAK_URL is not set" in nothing.stderr
        anonymous = run({"KEYCLOAK_URL": "http://127.0.0.1:9"}, "plan", "--file", str(BASE))
        assert anonymous.exit_code == 2
        assert "KEYCLOAK_ADMIN_USER" in anonymous.stderr
        down = run(
            {"KEYCLOAK_URL": "http://127.0.0.1:9", "KEYCLOAK_ADMIN_USER": "admin"}
            | {"KEYCLOAK_ADMIN_PASSWORD": "admin"},
            "check",
            "--file",
            str(BASE),
        )
        assert down.exit_code == 2
        assert "cannot reach Keycloak" in down.stderr
        assert down.stderr.count("\n") == 1

    def test_invalid_file_lists_every_error_with_its_location(
        self, env: dict[str, str], tmp_path: Path
    ) -> None:
        """Several mistakes in one file: each is printed with where it is; exit 2; nothing is
        sent to Keycloak."""
        bad = tmp_path / "bad.toml"
        bad.write_text(
            """
[realm]
name = "acme"
[realm.tokens]
access_token_lifespan = "five minutes"

[[realm_roles]]
name = "app-user"
composites = ["missing-role"]

[[clients]]
client_id = "svc"
redirect_uri = ["typo"]

[[clients]]
client_id = "web"
kind = "public"
[[clients.mappers]]
name = "tenant"
type = "user-attribute"
attribute = "tenant_id"
claim = "tenant_id"
[[clients.mappers]]
name = "aud"
type = "audience"
audience = "nowhere"
"""
        )
        result = run(env, "plan", "--file", str(bad))
        assert result.exit_code == 2
        lines = result.stderr.splitlines()
        assert lines[0].startswith(f"error: {bad}:5: realm.tokens.access_token_lifespan:")
        assert "Expected `int`, got `str`" in lines[0]
        assert lines[1] == (
            f"error: {bad}:13: clients[0] (svc).redirect_uri:"
            " Object contains unknown field `redirect_uri`"
        )
        assert len(lines) == 2  # structural errors first; cross-references once those are fixed

        bad.write_text(
            bad.read_text()
            .replace('"five minutes"', "300")
            .replace('redirect_uri = ["typo"]', 'redirect_uris = ["https://svc/*"]')
        )
        result = run(env, "plan", "--file", str(bad))
        assert result.exit_code == 2
        lines = result.stderr.splitlines()
        expected = [
            "realm_roles[0] (app-user).composites: no realm role 'missing-role'",
            "clients[1] (web).mappers[0] (tenant).attribute: 'tenant_id' is not declared",
            "clients[1] (web).mappers[1] (aud).audience: no client 'nowhere' in the file",
        ]
        for text in expected:
            assert any(text in line for line in lines), (text, lines)
        assert lines[0].startswith(f"error: {bad}:9: realm_roles[0] (app-user).composites")
        assert lines[1].startswith(f"error: {bad}:21: clients[1] (web).mappers[0] (tenant)")
        assert lines[2].startswith(f"error: {bad}:26: clients[1] (web).mappers[1] (aud)")

    def test_seed_users_are_refused_without_the_flag(
        self, empty: FakeKeycloak, env: dict[str, str], tmp_path: Path
    ) -> None:
        """A file given with --file that declares users is refused without --allow-seed-users
        (only the shipped development default is taken as it is); nothing is written."""
        result = run(env, "apply", "--file", str(copy_files(tmp_path)))
        assert result.exit_code == 2
        assert "declares seed users; pass --allow-seed-users" in result.stderr
        assert empty.admin.writes == []

    def test_without_file_the_development_realm_is_applied_with_a_note(
        self, empty: FakeKeycloak, env: dict[str, str]
    ) -> None:
        """CONTRACT §8: with only the admin variables set, apply configures a fresh Keycloak
        for `make up` (the shipped development realm, seed users included), saying so."""
        result = run(env, "apply")
        assert result.exit_code == 0, result.output
        assert "note: no --file: using the development realm" in result.stderr
        assert empty.users["alice"].password == "alice-password"
        assert empty.clients["auth-service"].secret == "auth-service-secret"

    def test_a_conflict_during_apply_is_one_line_and_exit_2(
        self, empty: FakeKeycloak, env: dict[str, str], tmp_path: Path
    ) -> None:
        """A client that appears between reading and writing (another apply racing) makes the
        create answer 409: one line naming Keycloak's message, exit 2; a rerun finishes."""
        original = empty.admin.project

        def race(**kwargs: bool) -> None:
            original(**kwargs)
            if empty.admin.exists and not any(
                c["clientId"] == "orders-api" for c in empty.admin.clients.values()
            ):
                empty.admin._add_client({"clientId": "orders-api", "bearerOnly": True})

        empty.admin.project = race  # type: ignore[method-assign]
        result = run(env, "apply", "--file", str(BASE))
        assert result.exit_code == 2
        assert "Keycloak answered 409: Client orders-api already exists" in result.stderr
        empty.admin.project = original  # type: ignore[method-assign]
        assert run(env, "apply", "--file", str(BASE)).exit_code == 0
        assert run(env, "check", "--file", str(BASE)).exit_code == 0


class TestExport:
    def test_export_prints_the_committed_realm_json(self) -> None:
        """`keycloak export --file keycloak/acme-dev.toml` is keycloak/realm-acme.json."""
        result = run({}, "export", "--file", str(DEV))
        assert result.exit_code == 0, result.output
        assert result.stdout == (ROOT / "keycloak" / "realm-acme.json").read_text()
        realm = json.loads(result.stdout)
        assert "clientScopes" not in realm


class TestServiceAccounts:
    def test_enabling_a_service_account_and_granting_it_roles_in_one_apply(
        self, empty: FakeKeycloak, env: dict[str, str], tmp_path: Path
    ) -> None:
        """A client gains service_accounts and realm/client role grants in the file: one apply
        enables the account and grants the roles; its client_credentials token carries them."""
        overlay = copy_files(tmp_path)
        assert run(env, "apply", "--file", str(overlay), "--allow-seed-users").exit_code == 0
        base = tmp_path / BASE.name
        base.write_text(
            base.read_text().replace(
                'kind = "bearer-only"\n',
                'kind = "bearer-only"\n'
                "service_accounts = true\n"
                'service_account_roles = { realm = ["token-introspector"],'
                ' clients = { realm-management = ["view-users"] } }\n',
            )
        )
        base.write_text(base.read_text().replace('kind = "bearer-only"', 'kind = "confidential"'))
        result = run(env, "apply", "--file", str(overlay), "--allow-seed-users")
        assert result.exit_code == 0, result.output
        assert "~ update role-mapping service-account-orders-api" in result.stdout
        orders = empty.clients["orders-api"]
        assert orders.service_accounts
        assert not orders.bearer_only
        assert set(orders.service_account_roles) == {
            "token-introspector",
            "realm-management:view-users",
        }
        assert run(env, "check", "--file", str(overlay), "--allow-seed-users").exit_code == 0


class TestClientScopes:
    def test_a_custom_scope_is_applied_linked_and_left_out_of_the_export(
        self, empty: FakeKeycloak, env: dict[str, str], tmp_path: Path
    ) -> None:
        """A client scope with an audience mapper, named in a client's default scopes: apply
        creates and links it and check is then in sync; export leaves it out with a note,
        because a clientScopes array suppresses Keycloak's built-in scopes."""
        overlay = copy_files(tmp_path)
        base = tmp_path / BASE.name
        base.write_text(
            base.read_text()
            + """
[[client_scopes]]
name = "reports"
description = "Access to the reports API"
[[client_scopes.mappers]]
name = "audience-reports"
type = "audience"
audience = "orders-api"
"""
        )
        text = base.read_text().replace(
            'kind = "public"\n',
            'kind = "public"\n'
            'default_client_scopes = ["basic", "profile", "email", "roles", "reports"]\n',
        )
        base.write_text(text)
        result = run(env, "apply", "--file", str(overlay), "--allow-seed-users")
        assert result.exit_code == 0, result.output
        assert "+ create client-scope reports" in result.stdout
        web = next(c for c in empty.admin.clients.values() if c["clientId"] == "acme-web")
        assert "reports" in web["defaultClientScopes"]
        assert run(env, "check", "--file", str(overlay), "--allow-seed-users").exit_code == 0

        exported = run({}, "export", "--file", str(overlay))
        assert exported.exit_code == 0
        assert "client scopes (reports) are not in the import" in exported.stderr
        realm = json.loads(exported.stdout)
        assert "clientScopes" not in realm
        (web_rep,) = [c for c in realm["clients"] if c["clientId"] == "acme-web"]
        assert "reports" not in web_rep["defaultClientScopes"]
