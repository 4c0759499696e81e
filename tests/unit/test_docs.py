"""The README and the example env file stay in step with the settings in code."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from auth_service.config import Settings, env_name, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_readme_table_lists_every_setting() -> None:
    """Each setting's variable has a row in the README configuration table, and no stale rows."""
    readme = (ROOT / "README.md").read_text()
    rows = set(re.findall(r"^\| `((?:AUTH|OTEL)_[A-Z0-9_]+)` \|", readme, flags=re.M))
    expected = {env_name(f.name) for f in msgspec.structs.fields(Settings)}
    assert rows == expected


def test_env_example_documents_every_setting_and_loads() -> None:
    """`.env.example` mentions every variable and its active lines form valid settings."""
    text = (ROOT / ".env.example").read_text()
    for f in msgspec.structs.fields(Settings):
        assert env_name(f.name) in text, env_name(f.name)
    env = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    settings = load_settings(env, env_file=False)
    assert settings.oidc_client_id == "auth-service"


def test_readme_shows_the_two_commands() -> None:
    """The front door names the install and test commands CI runs."""
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make dev" in readme
