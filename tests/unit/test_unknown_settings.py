"""Unknown ``AUTH_*`` variables stop start-up (CONTRACT §1), naming the likely setting.

The service's names are its settings and the ``_FILE`` variants of its
secrets; `TOOLING_VARIABLES` lists the few ``AUTH_*`` names this repository's
tooling (tests, `auth-service dev`, the benchmark) reads and the service does
not. A scan of the repository keeps that list complete.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from auth_service.config import TOOLING_VARIABLES, SettingsError, known_variables, load_settings
from auth_service.devstack import PORT_VARIABLES
from tests.unit.test_config import VALID

ROOT = Path(__file__).resolve().parents[2]


def problems(env: dict[str, str], *, env_file: bool = False) -> list[str]:
    with pytest.raises(SettingsError) as info:
        load_settings(env, env_file=env_file)
    return info.value.problems


def test_a_typo_is_one_line_naming_it_and_the_setting_meant() -> None:
    """AUTH_OIDC_AUDIENCE (no S) is refused, pointing at AUTH_OIDC_AUDIENCES."""
    assert problems({**VALID, "AUTH_OIDC_AUDIENCE": "orders-api"}) == [
        "AUTH_OIDC_AUDIENCE: unknown setting; did you mean AUTH_OIDC_AUDIENCES?"
    ]


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("AUTH_DATABASE_URI", "AUTH_DATABASE_URL"),
        ("AUTH_SECRET_KEY", "AUTH_SECRET_KEYS"),
        ("AUTH_REDIS_URL_FILES", "AUTH_REDIS_URL_FILE"),
        ("AUTH_DEV_GATWAY_PORT", "AUTH_DEV_GATEWAY_PORT"),
    ],
)
def test_close_names_are_suggested(name: str, meant: str) -> None:
    """Each unknown name gets the closest known one (settings, secret files, tooling)."""
    (line,) = problems({**VALID, name: "x"})
    assert line == f"{name}: unknown setting; did you mean {meant}?"


def test_only_secrets_have_a_file_variant() -> None:
    """``AUTH_PORT_FILE`` is not a way to set the port: refused."""
    (line,) = problems({**VALID, "AUTH_PORT_FILE": "/run/port"})
    assert line.startswith("AUTH_PORT_FILE: unknown setting")


def test_a_name_close_to_nothing_gets_no_suggestion() -> None:
    """No guess is better than a wrong one."""
    assert problems({**VALID, "AUTH_XYZZY": "1"}) == ["AUTH_XYZZY: unknown setting"]


def test_unknown_names_in_the_env_file_are_refused_too(tmp_path: Path) -> None:
    """A typo in ``.env`` stops start-up as well, and the line says where it came from."""
    envfile = tmp_path / ".env"
    envfile.write_text("AUTH_WORKER=3\nOTHER_TOOL_SETTING=1\n")
    lines = problems({**VALID, "AUTH_ENV_FILE": str(envfile)}, env_file=True)
    assert lines == ["AUTH_WORKER (in the env file): unknown setting; did you mean AUTH_WORKERS?"]


def test_tooling_variables_secret_files_and_other_prefixes_are_accepted(tmp_path: Path) -> None:
    """The allow-list, ``<SECRET>_FILE`` and non-AUTH_ variables (OTEL_*, PATH) pass."""
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    env = {k: v for k, v in VALID.items() if k != "AUTH_OIDC_CLIENT_SECRET"}
    env |= dict.fromkeys(TOOLING_VARIABLES, "1")
    env |= {
        "AUTH_ENV_FILE": "/nonexistent",
        "AUTH_OIDC_CLIENT_SECRET_FILE": str(secret),
        "OTEL_EXPORTER_OTLP_HEADERS": "x=1",
        "PATH": "/usr/bin",
    }
    assert load_settings(env, env_file=True).oidc_client_secret == "from-file"


def test_every_unknown_name_is_reported_with_the_other_problems() -> None:
    """Unknown names join the other problems: one line each, all at once."""
    env = {**VALID, "AUTH_PORT": "x", "AUTH_LOGFORMAT": "json", "AUTH_HOSTS": "0.0.0.0"}
    lines = problems(env)
    assert sorted(line.split(":")[0] for line in lines) == [
        "AUTH_HOSTS",
        "AUTH_LOGFORMAT",
        "AUTH_PORT",
    ]


def test_cli_refuses_to_start_with_an_unknown_setting() -> None:
    """`auth-service serve` exits 2 with the one line before binding anything."""
    env = {"PATH": "/usr/bin:/bin", "AUTH_ENV_FILE": "/nonexistent", **VALID}
    env["AUTH_OIDC_AUDIENCE"] = "orders-api"
    proc = subprocess.run(
        [sys.executable, "-m", "auth_service", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "configuration error: AUTH_OIDC_AUDIENCE: unknown setting; "
        "did you mean AUTH_OIDC_AUDIENCES?"
    ]


_READ = re.compile(
    r"""(?:environ\.get|getenv|\.get|envvar=|environ\[)\(?\s*["'](AUTH_[A-Z0-9_]+)["']"""
)


def _auth_names_read_in(path: Path) -> set[str]:
    return set(_READ.findall(path.read_text(encoding="utf-8")))


def test_every_auth_variable_the_repository_reads_is_known() -> None:
    """Python code reading an AUTH_* variable, the example env file, the Makefile, CI and the
    service/migrate environments of docker-compose only use known names."""
    used: dict[str, str] = {}
    for base in ("auth_service", "tests", "bench", "deploy"):
        for path in (ROOT / base).rglob("*.py"):
            for name in _auth_names_read_in(path):
                used.setdefault(name, str(path.relative_to(ROOT)))
    for rel in (".env.example", "Makefile", ".ci/run"):
        text = (ROOT / rel).read_text(encoding="utf-8")
        for name in re.findall(r"^#?\s*(AUTH_[A-Z0-9_]+)=", text, flags=re.M):
            used.setdefault(name, rel)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    for service in ("auth-service", "migrate"):
        for name in compose["services"][service].get("environment", {}):
            if name.startswith("AUTH_"):
                used.setdefault(name, f"docker-compose.yml {service}")
    for name in PORT_VARIABLES.values():  # read by `auth-service dev` through this mapping
        used.setdefault(name, "auth_service/devstack.py PORT_VARIABLES")
    assert "AUTH_TEST_DATABASE_URL" in used and "AUTH_DEV_RUNTIME_DIR" in used
    unknown = {name: where for name, where in used.items() if name not in known_variables()}
    assert unknown == {}
