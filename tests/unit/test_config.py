"""Settings loading: required values, types, secrets from files, every problem reported."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from auth_service.config import SettingsError, load_settings

KEY = base64.b64encode(b"k" * 32).decode()
VALID = {
    "AUTH_OIDC_ISSUER": "http://kc:8080/realms/acme",
    "AUTH_OIDC_CLIENT_SECRET": "s3cr3t-value",
    "AUTH_PUBLIC_URL": "http://localhost:8080/",
    "AUTH_DATABASE_URL": "postgresql://auth@db/auth",
    "AUTH_REDIS_URL": "redis://redis:6379/0",
    "AUTH_POLICY_FILE": "/etc/auth/policy.toml",
    "AUTH_SECRET_KEYS": f"k2:{KEY},k1:{base64.urlsafe_b64encode(b'j' * 32).decode()}",
}


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as info:
        load_settings(env, env_file=False)
    return info.value.problems


def test_valid_environment_loads_with_types_and_defaults() -> None:
    """Strings become typed values; optional settings take their safe defaults."""
    s = load_settings(
        {**VALID, "AUTH_PORT": "9000", "AUTH_OIDC_AUDIENCES": "a, b,"}, env_file=False
    )
    assert s.port == 9000
    assert s.oidc_audiences == ("a", "b")
    assert s.public_url == "http://localhost:8080"
    assert [k.id for k in s.secret_keys] == ["k2", "k1"]
    assert s.secret_keys[1].key == b"j" * 32
    assert s.oidc_client_id == "auth-service"
    assert s.audiences == ("a", "b")
    assert s.claim_header_map == {"tenant_id": "X-Auth-Tenant"}


def test_every_missing_required_setting_is_reported_at_once() -> None:
    """With an empty environment every required variable gets its own line."""
    lines = problems({})
    names = sorted(line.split(":")[0] for line in lines)
    assert names == sorted(
        [
            "AUTH_OIDC_ISSUER",
            "AUTH_OIDC_CLIENT_SECRET",
            "AUTH_PUBLIC_URL",
            "AUTH_DATABASE_URL",
            "AUTH_REDIS_URL",
            "AUTH_POLICY_FILE",
            "AUTH_SECRET_KEYS",
        ]
    )


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("AUTH_DATABASE_URL", "mysql://x/y"),
        ("AUTH_REDIS_URL", "not a url"),
        ("AUTH_OIDC_ISSUER", "ftp://kc/realms/acme"),
        ("AUTH_PORT", "eighty"),
        ("AUTH_PORT", "70000"),
        ("AUTH_SECRET_KEYS", "k1"),
        ("AUTH_SECRET_KEYS", "k1:not-base64!!"),
        ("AUTH_SECRET_KEYS", f"k1:{base64.b64encode(b'short').decode()}"),
        ("AUTH_SECRET_KEYS", f"k1:{KEY},k1:{KEY}"),
        ("AUTH_OIDC_ALGORITHMS", "RS256,HS256"),
        ("AUTH_OIDC_LEEWAY", "120"),
        ("AUTH_LOG_FORMAT", "xml"),
        ("AUTH_CLAIM_HEADERS", "tenant_id=Bad Header"),
        ("AUTH_TRUSTED_PROXIES", "10.0.0.0/8,gateway.internal"),
        ("AUTH_TRUSTED_PROXIES", "10.0.0.0/33"),
    ],
)
def test_invalid_value_names_the_variable(var: str, value: str) -> None:
    """A malformed value is one line that starts with the variable's name."""
    lines = problems({**VALID, var: value})
    assert len(lines) == 1
    assert lines[0].startswith(f"{var}:")


def test_trusted_proxies_default_and_list() -> None:
    """``AUTH_TRUSTED_PROXIES`` defaults to this host and takes a comma list of CIDRs."""
    assert load_settings(VALID, env_file=False).trusted_proxies == ("127.0.0.0/8", "::1")
    s = load_settings({**VALID, "AUTH_TRUSTED_PROXIES": "10.0.0.0/8, fd00::/8"}, env_file=False)
    assert s.trusted_proxies == ("10.0.0.0/8", "fd00::/8")


def test_secret_values_never_appear_in_problems() -> None:
    """A bad secret is reported without echoing it."""
    lines = problems({**VALID, "AUTH_SECRET_KEYS": "k1:c2VjcmV0LXNob3J0"})
    assert "c2VjcmV0LXNob3J0" not in lines[0]


def test_secret_from_file(tmp_path: Path) -> None:
    """``<NAME>_FILE`` reads the secret from a file and wins over nothing else."""
    f = tmp_path / "secret"
    f.write_text("from-file\n")
    env = {k: v for k, v in VALID.items() if k != "AUTH_OIDC_CLIENT_SECRET"}
    s = load_settings({**env, "AUTH_OIDC_CLIENT_SECRET_FILE": str(f)}, env_file=False)
    assert s.oidc_client_secret == "from-file"


def test_unreadable_secret_file_is_reported(tmp_path: Path) -> None:
    """A ``_FILE`` that cannot be read is named, once."""
    env = {k: v for k, v in VALID.items() if k != "AUTH_SECRET_KEYS"}
    lines = problems({**env, "AUTH_SECRET_KEYS_FILE": str(tmp_path / "missing")})
    assert len(lines) == 1
    assert lines[0].startswith("AUTH_SECRET_KEYS_FILE:")


def test_env_file_never_overrides_real_environment(tmp_path: Path) -> None:
    """Values from ``.env`` fill gaps; the real environment wins."""
    envfile = tmp_path / ".env"
    envfile.write_text("AUTH_PORT=1234\nAUTH_WORKERS=3\n")
    s = load_settings({**VALID, "AUTH_PORT": "9000", "AUTH_ENV_FILE": str(envfile)})
    assert (s.port, s.workers) == (9000, 3)


def test_cli_exits_2_with_one_line_per_problem_and_no_traceback(tmp_path: Path) -> None:
    """``auth-service migrate`` with bad settings prints one line per problem and exits 2."""
    env = {
        "PATH": "/usr/bin:/bin",
        "AUTH_ENV_FILE": "/nonexistent",
        **VALID,
        "AUTH_DATABASE_URL": "http://nope",
        "AUTH_PORT": "x",
        "AUTH_SECRET_KEYS": "garbage",
        "AUTH_OIDC_CLIENT_SECRET_FILE": str(tmp_path / "nope"),
    }
    del env["AUTH_REDIS_URL"]
    proc = subprocess.run(
        [sys.executable, "-m", "auth_service", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    named = sorted(line.split(": ")[1].split(":")[0] for line in lines)
    assert named == sorted(
        [
            "AUTH_DATABASE_URL",
            "AUTH_PORT",
            "AUTH_SECRET_KEYS",
            "AUTH_OIDC_CLIENT_SECRET_FILE",
            "AUTH_REDIS_URL",
        ]
    )
