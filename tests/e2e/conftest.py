"""End-to-end fixtures: the `make dev` topology as real processes on free ports.

The Keycloak stand-in, ``auth-service serve``, the demo downstream app and the
system nginx with the rendered ``gateway_config/nginx`` config. Started once
per session and waited for by polling (never by sleeping). A missing nginx
fails the run with one line; it is never a skip.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_service.devstack import (
    DevError,
    demo_command,
    find_nginx,
    nginx_command,
    render_nginx,
)
from tests.conftest import DATA, REDIS_URL
from tests.support.processes import ROOT, ServiceProcess, free_port, wait_until


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class StandIn:
    """The Keycloak stand-in process and its control API."""

    proc: subprocess.Popen[bytes]
    base: str
    issuer: str

    def mint(self, **kwargs: Any) -> str:
        """An access token from ``POST /_standin/mint`` (``mint_access_token`` kwargs)."""
        r = httpx.post(f"{self.base}/_standin/mint", json=kwargs, timeout=5)
        r.raise_for_status()
        token: str = r.json()["access_token"]
        return token


def start_standin(timeout: float = 20.0, extra_args: Sequence[str] = ()) -> StandIn:
    """``python -m tests.fakes.keycloak --port 0``; read the ready line it prints."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.keycloak",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *extra_args,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while b"ready:" not in line:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or proc.poll() is not None:
            _stop(proc)
            raise AssertionError(f"Keycloak stand-in did not start: {line!r}")
        readable, _, _ = select.select([proc.stdout], [], [], remaining)
        if readable:
            line = proc.stdout.readline()
    # "Keycloak stand-in ready: <base> issuer <issuer>"
    words = line.decode().split()
    return StandIn(proc, words[3], words[5])


@dataclass
class Gateway:
    """A running nginx with the rendered gateway config."""

    proc: subprocess.Popen[bytes]
    port: int
    runtime_dir: Path

    @property
    def url(self) -> str:
        """Base URL of the gateway."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def error_log(self) -> str:
        """What nginx wrote to stderr so far."""
        return (self.runtime_dir / "logs" / "nginx.stderr").read_text(errors="replace")


def start_gateway(
    nginx: str, runtime_dir: Path, *, port: int, auth_port: int, demo_port: int
) -> Gateway:
    """Render the config into ``runtime_dir``, start nginx and wait for its health route."""
    conf = render_nginx(
        runtime_dir,
        listen=f"127.0.0.1:{port}",
        auth_upstream=f"127.0.0.1:{auth_port}",
        demo_upstream=f"127.0.0.1:{demo_port}",
        access_log=str(runtime_dir / "logs" / "access.log"),
    )
    with (runtime_dir / "logs" / "nginx.stderr").open("ab") as log:
        proc = subprocess.Popen(nginx_command(nginx, conf), stdout=log, stderr=log)
    gateway = Gateway(proc, port, runtime_dir)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"nginx exited early:\n{gateway.error_log}")
        return _http_ok(f"{gateway.url}/_gateway/health")

    wait_until(up, 15, "nginx to answer /_gateway/health")
    return gateway


@pytest.fixture(scope="session")
def nginx_binary() -> str:
    """The system nginx; its absence fails the run (``apt-get install nginx``)."""
    try:
        return find_nginx()
    except DevError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def standin() -> Iterator[StandIn]:
    """The Keycloak stand-in as a process (as `make dev` runs it)."""
    server = start_standin()
    yield server
    _stop(server.proc)


@pytest.fixture(scope="session")
def gateway_port() -> int:
    """The port nginx listens on (chosen before the service, which needs its public URL)."""
    return free_port()


@pytest.fixture(scope="session")
def e2e_env(
    database_url: str,
    redis_prefix: str,
    secret_key_b64: str,
    standin: StandIn,
    gateway_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """Settings of the auth service behind the gateway."""
    return {
        "AUTH_OIDC_ISSUER": standin.issuer,
        "AUTH_OIDC_CLIENT_SECRET": "auth-service-secret",
        "AUTH_OIDC_AUDIENCES": "orders-api,auth-service",
        "AUTH_PUBLIC_URL": f"http://127.0.0.1:{gateway_port}",
        "AUTH_DATABASE_URL": database_url,
        "AUTH_REDIS_URL": REDIS_URL,
        "AUTH_REDIS_PREFIX": f"{redis_prefix}e2e:",
        "AUTH_POLICY_FILE": str(DATA / "policy.toml"),
        "AUTH_SECRET_KEYS": f"k1:{secret_key_b64}",
        "AUTH_ALLOWED_REDIRECT_HOSTS": "127.0.0.1",
        "AUTH_CLAIM_HEADERS": "tenant_id=X-Auth-Tenant,org.site=X-Auth-Site",
        "AUTH_AUDIT_SPOOL_DIR": str(tmp_path_factory.mktemp("e2e-spool")),
        "AUTH_LOG_FORMAT": "json",
    }


@pytest.fixture(scope="session")
def auth_service(e2e_env: dict[str, str]) -> Iterator[ServiceProcess]:
    """``auth-service serve`` as a subprocess, its log in ``log_path``."""
    service = ServiceProcess(e2e_env).start()
    wait_until(lambda: _http_ok(f"{service.url}/health/ready"), 20, "auth-service ready")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def demo_app() -> Iterator[str]:
    """The demo downstream app under granian, as `make dev` runs it; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        demo_command(sys.executable, port),
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError("demo app exited early")
        return _http_ok(f"{url}/")

    wait_until(up, 15, "demo app to answer")
    yield url
    _stop(proc)


@pytest.fixture(scope="session")
def gateway(
    nginx_binary: str,
    gateway_port: int,
    auth_service: ServiceProcess,
    demo_app: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    """nginx in front of the auth service and the demo app."""
    gw = start_gateway(
        nginx_binary,
        tmp_path_factory.mktemp("nginx"),
        port=gateway_port,
        auth_port=auth_service.port,
        demo_port=int(demo_app.rsplit(":", 1)[1]),
    )
    yield gw
    _stop(gw.proc, signal.SIGQUIT)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """An HTTP client that does not follow redirects."""
    with httpx.Client(follow_redirects=False, trust_env=False, timeout=10) as c:
        yield c
