"""Desired-state loading: overlay merge, ${VAR:default} placeholders, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from auth_service.keycloak_admin import DesiredStateError, load_desired_state
from auth_service.keycloak_admin.representation import client_rep

BASE = """
[realm]
name = "acme"

[user_profile]
[[user_profile.attributes]]
name = "tenant_id"

[[clients]]
client_id = "svc"
redirect_uris = ["${PUBLIC_URL:http://localhost:8080}/cb"]
secret = "${SVC_SECRET}"
[[clients.mappers]]
name = "tenant"
type = "user-attribute"
attribute = "tenant_id"
claim = "tenant_id"
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """A base file and an overlay that changes one client field and adds a user."""
    base = tmp_path / "base.toml"
    base.write_text(BASE)
    overlay = tmp_path / "dev.toml"
    overlay.write_text(
        'base = "base.toml"\n'
        "[[clients]]\n"
        'client_id = "svc"\n'
        "direct_access_grants = true\n"
        "[[users]]\n"
        'username = "alice"\n'
        'attributes = { tenant_id = ["t-1"] }\n'
    )
    return base, overlay


def test_overlay_merges_items_by_key_and_keeps_the_rest(files: tuple[Path, Path]) -> None:
    """The overlay's `svc` changes one field; mappers and URLs from the base stay."""
    _, overlay = files
    state = load_desired_state(overlay, env={"SVC_SECRET": "s"})
    (svc,) = state.clients
    assert svc.direct_access_grants is True
    assert [m.name for m in svc.mappers] == ["tenant"]
    assert [u.username for u in state.users] == ["alice"]


def test_placeholders_take_the_environment_then_the_default(files: tuple[Path, Path]) -> None:
    """${NAME:default}: the environment wins, else the default; env=None keeps them (export)."""
    base, _ = files
    svc = load_desired_state(base, env={"SVC_SECRET": "s"}).clients[0]
    assert svc.redirect_uris == ["http://localhost:8080/cb"]
    assert svc.secret == "s"
    env = {"SVC_SECRET": "s", "PUBLIC_URL": "https://app.example.com"}
    assert load_desired_state(base, env=env).clients[0].redirect_uris == [
        "https://app.example.com/cb"
    ]
    kept = client_rep(load_desired_state(base, env=None).clients[0])
    assert kept["redirectUris"] == ["${PUBLIC_URL:http://localhost:8080}/cb"]
    assert kept["secret"] == "${SVC_SECRET}"


def test_a_placeholder_without_value_or_default_is_an_error(files: tuple[Path, Path]) -> None:
    """No SVC_SECRET and no default: an error naming the variable and where it is used."""
    base, _ = files
    with pytest.raises(DesiredStateError) as failed:
        load_desired_state(base, env={})
    (error,) = failed.value.errors
    assert "clients[0].secret: environment variable SVC_SECRET is not set" in error


def test_errors_point_at_the_file_and_line_they_come_from(files: tuple[Path, Path]) -> None:
    """An error in the overlay names the overlay's line, one in the base the base's line."""
    base, overlay = files
    base.write_text(BASE.replace('attribute = "tenant_id"', 'attribute = "tenant"'))
    overlay.write_text(overlay.read_text().replace("tenant_id = ", "tenant = "))
    with pytest.raises(DesiredStateError) as failed:
        load_desired_state(overlay, env={"SVC_SECRET": "s"})
    errors = failed.value.errors
    assert len(errors) == 2
    mapper = next(e for e in errors if "mappers[0]" in e)
    assert mapper.startswith(f"{base}:16: clients[0] (svc).mappers[0] (tenant).attribute:")
    user = next(e for e in errors if "users[0]" in e)
    assert user.startswith(f"{overlay}:7: users[0] (alice).attributes.tenant:")


def test_unreadable_and_malformed_files_are_errors(tmp_path: Path) -> None:
    """A missing file and bad TOML are errors naming the file, not tracebacks."""
    with pytest.raises(DesiredStateError) as missing:
        load_desired_state(tmp_path / "nope.toml", env={})
    assert "cannot read" in missing.value.errors[0]
    broken = tmp_path / "broken.toml"
    broken.write_text("[realm\nname=")
    with pytest.raises(DesiredStateError) as malformed:
        load_desired_state(broken, env={})
    assert malformed.value.errors[0].startswith(f"{broken}: not valid TOML")
