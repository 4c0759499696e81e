"""`auth-service dev` front door: one settings rule, development values, busy ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from auth_service.config import load_settings
from auth_service.devstack import (
    DEV_DEFAULTS,
    PORT_VARIABLES,
    DevError,
    DevPorts,
    busy_ports_error,
    dev_environment,
    resolve_ports,
)
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def two_busy_ports() -> Iterator[tuple[int, int]]:
    """Two ports with a listening socket on 127.0.0.1."""
    socks = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        socks.append(s)
    yield socks[0].getsockname()[1], socks[1].getsockname()[1]
    for s in socks:
        s.close()


def test_busy_port_error_names_every_busy_port_and_its_variable(
    two_busy_ports: tuple[int, int],
) -> None:
    """Both busy ports in one line, each with the AUTH_DEV_*_PORT that moves it; a free port
    is not mentioned, and no command-line option is suggested (`make dev` passes none)."""
    gateway, auth = two_busy_ports
    demo = free_port()
    message = busy_ports_error({"gateway": gateway, "auth": auth, "demo": demo})
    assert message is not None
    assert "\n" not in message
    assert f"{gateway} (gateway; move it with AUTH_DEV_GATEWAY_PORT=<port>)" in message
    assert f"{auth} (auth; move it with AUTH_DEV_AUTH_PORT=<port>)" in message
    assert str(demo) not in message and "AUTH_DEV_DEMO_PORT" not in message
    assert "--" not in message
    assert busy_ports_error({"demo": demo}) is None


def test_ports_come_from_options_then_environment_then_env_file(tmp_path: Path) -> None:
    """An option wins, then the environment, then .env, then the default."""
    envfile = tmp_path / ".env"
    envfile.write_text("AUTH_DEV_GATEWAY_PORT=9001\nAUTH_DEV_DEMO_PORT=9003\n")
    environ = {"AUTH_ENV_FILE": str(envfile), "AUTH_DEV_DEMO_PORT": "9103"}
    ports = resolve_ports({"auth": 9202, "gateway": None}, environ)
    assert ports == DevPorts(gateway=9001, auth=9202, demo=9103, idp=DevPorts.idp)
    with pytest.raises(DevError, match="AUTH_DEV_IDP_PORT"):
        resolve_ports({}, {"AUTH_DEV_IDP_PORT": "eighty", "AUTH_ENV_FILE": "/nonexistent"})


def test_dev_reads_the_environment_then_env_file_and_never_env_example(tmp_path: Path) -> None:
    """The same rule as every command: environment > .env; .env.example is not read; what is
    unset gets DEV_DEFAULTS or a value derived from the ports."""
    root = tmp_path / "checkout"
    (root / "deploy").mkdir(parents=True)
    (root / ".env.example").write_text("AUTH_REDIS_URL=redis://from-env-example:6379/0\n")
    envfile = tmp_path / ".env"
    envfile.write_text(
        "AUTH_DATABASE_URL=postgresql://from-dotenv@127.0.0.1/auth\nAUTH_LOG_LEVEL=debug\n"
    )
    environ = {"AUTH_ENV_FILE": str(envfile), "AUTH_LOG_LEVEL": "warning"}
    ports = DevPorts(gateway=9080)
    dev = dev_environment(environ, ports, tmp_path / "run", root=root)
    assert dev.env["AUTH_DATABASE_URL"] == "postgresql://from-dotenv@127.0.0.1/auth"
    assert dev.env["AUTH_LOG_LEVEL"] == "warning"
    assert dev.env["AUTH_REDIS_URL"] == DEV_DEFAULTS["AUTH_REDIS_URL"]
    assert dev.env["AUTH_PUBLIC_URL"] == "http://localhost:9080"
    assert dev.standin and dev.env["AUTH_OIDC_ISSUER"] == "http://127.0.0.1:8081/realms/acme"


def test_with_nothing_set_dev_has_a_complete_valid_configuration(tmp_path: Path) -> None:
    """A fresh clone (no .env, nothing exported) loads: `make dev` is the only command."""
    dev = dev_environment({"AUTH_ENV_FILE": "/nonexistent"}, DevPorts(), tmp_path, root=ROOT)
    settings = load_settings(dev.env, env_file=False)
    assert settings.public_url == "http://localhost:8080"
    assert Path(settings.policy_file) == ROOT / "deploy" / "policy.toml"


def test_dev_defaults_are_the_values_of_env_example() -> None:
    """One set of development values: DEV_DEFAULTS says what .env.example says."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    example = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert {k: example[k] for k in DEV_DEFAULTS} == DEV_DEFAULTS
    assert set(PORT_VARIABLES.values()) <= set(
        (ROOT / "README.md").read_text().replace("`", " ").split()
    )
