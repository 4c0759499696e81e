"""``auth-service dev``: the CONTRACT §11 topology natively, as child processes.

In order, each one waited for until healthy: the Keycloak stand-in (unless
``AUTH_OIDC_ISSUER`` names a real Keycloak), ``auth-service migrate``,
``auth-service serve``, the demo downstream app and nginx from the system with
``gateway_config/nginx``. Child output is streamed with a name prefix; SIGINT
or SIGTERM stops everything in reverse order.

Settings follow the rule of every command (`auth_service.config.read_env_file`):
the real environment, then ``.env`` for what it does not set; ``.env.example``
is never read. What is still unset after that comes from `DEV_DEFAULTS` and,
for values that depend on the chosen ports (public URL, the stand-in's
issuer), is derived from them. The ports themselves are ``--*-port`` options
or ``AUTH_DEV_*_PORT`` (environment or ``.env``). PostgreSQL and Redis are the
local servers named by ``AUTH_DATABASE_URL``/``AUTH_REDIS_URL``; the database
is created when missing.

This module is CLI-only and needs a source checkout: the Keycloak stand-in
lives in ``tests/fakes/keycloak`` (shared with the test suite, which the
``keycloak/`` realm files feed), the gateway config in ``gateway_config/`` and
the demo app in ``deploy/demo``. From an installed package it stops with one
line saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import click
import httpx

from auth_service.config import SettingsError, load_settings, read_env_file

__all__ = (
    "DEV_DEFAULTS",
    "NGINX_DIR",
    "PORT_VARIABLES",
    "ROOT",
    "DevError",
    "DevPorts",
    "busy_ports_error",
    "demo_command",
    "dev_command",
    "dev_environment",
    "find_nginx",
    "nginx_command",
    "render_nginx",
    "render_template",
    "resolve_ports",
)

ROOT = Path(__file__).resolve().parent.parent
"""The source checkout this module runs from."""
NGINX_DIR = ROOT / "gateway_config" / "nginx"
DEMO_DIR = ROOT / "deploy" / "demo"
STANDIN_PACKAGE = ROOT / "tests" / "fakes" / "keycloak"
REALM_FILE = ROOT / "keycloak" / "acme-dev.toml"
"""Desired state the development IdP loads (the same file `docker compose` imports)."""
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
_PR_SET_PDEATHSIG = 1


class DevError(Exception):
    """The topology cannot start; the message is one line for the operator."""


# --- nginx -----------------------------------------------------------------------------


def find_nginx() -> str:
    """Path of the system nginx binary.

    Raises:
        DevError: nginx is not installed, naming the package to install.
    """
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in NGINX_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise DevError(
        "nginx is not installed (looked in PATH and /usr/sbin): install it with "
        "`apt-get install nginx` (Debian/Ubuntu), then run `make dev` again"
    )


def render_template(text: str, values: Mapping[str, str]) -> str:
    """Replace every ``${NAME}`` of ``values`` in ``text``, like the nginx image's envsubst.

    nginx variables (``$name``, lower case) are left alone.

    Raises:
        DevError: a placeholder outside comments has no value.
    """
    out = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)
    for line in out.splitlines():
        missing = _PLACEHOLDER.findall(line.split("#", 1)[0])
        if missing:
            raise DevError(f"nginx template: no value for ${{{missing[0]}}}")
    return out


def render_nginx(
    runtime_dir: Path,
    *,
    listen: str,
    auth_upstream: str,
    demo_upstream: str,
    access_log: str = "/dev/stdout",
    nginx_dir: Path = NGINX_DIR,
) -> Path:
    """Render ``nginx.conf`` and ``gateway.conf`` into ``runtime_dir``; return ``nginx.conf``.

    ``runtime_dir/auth-service`` becomes a symlink to ``nginx_dir`` so the
    templates' relative ``include auth-service/...`` lines resolve, as they do
    under ``/etc/nginx`` in the container.
    """
    runtime_dir = runtime_dir.resolve()
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (runtime_dir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    (runtime_dir / "logs").mkdir(exist_ok=True)
    link = runtime_dir / "auth-service"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(nginx_dir.resolve(), target_is_directory=True)
    values = {
        "RUNTIME_DIR": str(runtime_dir),
        "GATEWAY_LISTEN": listen,
        "AUTH_UPSTREAM": auth_upstream,
        "DEMO_UPSTREAM": demo_upstream,
        "ACCESS_LOG": access_log,
    }
    for name in ("gateway.conf", "nginx.conf"):
        text = (nginx_dir / f"{name}.template").read_text(encoding="utf-8")
        (runtime_dir / name).write_text(render_template(text, values), encoding="utf-8")
    return runtime_dir / "nginx.conf"


def demo_command(python: str, port: int) -> list[str]:
    """The demo downstream app on ``127.0.0.1:port`` under granian (as docker-compose runs it)."""
    return [
        python,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--working-dir",
        str(DEMO_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "app:app",
    ]


def nginx_command(nginx: str, conf: Path, *, test: bool = False) -> list[str]:
    """The command line running (or, with ``test``, checking) the rendered ``conf``."""
    base = [nginx, "-e", "stderr", "-p", str(conf.parent), "-c", str(conf)]
    return [*base, "-t", "-q"] if test else [*base, "-g", "daemon off;"]


def check_nginx(nginx: str, conf: Path) -> None:
    """``nginx -t`` on ``conf``; raises `DevError` with nginx's complaint."""
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        nginx_command(nginx, conf, test=True), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        detail = " ".join((done.stderr or done.stdout).split())
        raise DevError(f"nginx rejects {conf}: {detail}")


# --- settings --------------------------------------------------------------------------


@dataclass(frozen=True)
class DevPorts:
    """Ports of the dev topology (all on 127.0.0.1)."""

    gateway: int = 8080
    auth: int = 8000
    demo: int = 8082
    idp: int = 8081


PORT_VARIABLES = {
    "gateway": "AUTH_DEV_GATEWAY_PORT",
    "auth": "AUTH_DEV_AUTH_PORT",
    "demo": "AUTH_DEV_DEMO_PORT",
    "idp": "AUTH_DEV_IDP_PORT",
}
"""`DevPorts` field → the variable that moves it (environment or ``.env``)."""

DEV_DEFAULTS = {
    "AUTH_OIDC_CLIENT_SECRET": "auth-service-secret",
    "AUTH_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/auth_dev",
    "AUTH_REDIS_URL": "redis://127.0.0.1:6379/0",
    "AUTH_POLICY_FILE": "deploy/policy.toml",
    "AUTH_SECRET_KEYS": "dev1:ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZCE=",
}
"""Development values `auth-service dev` uses for required settings nobody set.

The same values as ``.env.example``; the issuer and the public URL are derived
from the ports instead.
"""


@dataclass
class DevEnvironment:
    """The settings environment of the children and how the IdP is provided."""

    env: dict[str, str]
    standin: bool
    """Start the Keycloak stand-in (no real Keycloak configured)."""
    standin_base: str
    """Base URL the stand-in presents (``issuer = <base>/realms/<realm>``)."""
    realm: str


def dev_environment(
    environ: Mapping[str, str], ports: DevPorts, runtime_dir: Path, root: Path = ROOT
) -> DevEnvironment:
    """Settings for the children: real env > ``.env`` > `DEV_DEFAULTS` and derived values."""
    explicit = {**read_env_file(environ), **environ}
    env = {**DEV_DEFAULTS, **explicit}

    standin_base = f"http://127.0.0.1:{ports.idp}"
    realm = "acme"
    issuer = explicit.get("AUTH_OIDC_ISSUER", "").strip()
    standin = True
    if issuer:
        parts = urlsplit(issuer)
        standin = parts.hostname in LOOPBACK and parts.port == ports.idp
        if standin:
            standin_base = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
            realm = parts.path.rstrip("/").rsplit("/realms/", 1)[-1] or realm
    if standin:
        env["AUTH_OIDC_ISSUER"] = f"{standin_base}/realms/{realm}"

    derived = {
        "AUTH_PUBLIC_URL": f"http://localhost:{ports.gateway}",
        "AUTH_OIDC_AUDIENCES": "orders-api,auth-service",
        "AUTH_ALLOWED_REDIRECT_HOSTS": "localhost,127.0.0.1",
        "AUTH_LOG_FORMAT": "console",
        "AUTH_AUDIT_SPOOL_DIR": str(runtime_dir / "audit-spool"),
    }
    for name, value in derived.items():
        if not explicit.get(name, "").strip():
            env[name] = value
    policy = Path(env.get("AUTH_POLICY_FILE", "deploy/policy.toml"))
    env["AUTH_POLICY_FILE"] = str(policy if policy.is_absolute() else root / policy)
    env["AUTH_ENV_FILE"] = os.devnull  # everything is resolved here; children read no .env
    env["PYTHONUNBUFFERED"] = "1"
    return DevEnvironment(env=env, standin=standin, standin_base=standin_base, realm=realm)


async def _ensure_database(dsn: str) -> bool:
    """Create the database of ``dsn`` when it does not exist; True when created."""
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")), timeout=5)
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await admin.execute(f"CREATE DATABASE {quoted}")
    except asyncpg.DuplicateDatabaseError:  # created concurrently
        return False
    finally:
        await admin.close()
    return True


async def _ping_redis(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        await client.ping()
    finally:
        await client.aclose()


def prepare_backends(env: Mapping[str, str]) -> list[str]:
    """Check PostgreSQL and Redis, creating the dev database if needed; returns notes."""
    dsn, redis_url = env["AUTH_DATABASE_URL"], env["AUTH_REDIS_URL"]
    safe_dsn = urlunsplit(urlsplit(dsn)._replace(netloc=urlsplit(dsn).hostname or ""))
    try:
        created = asyncio.run(_ensure_database(dsn))
    except Exception as exc:  # refused, auth failure, timeout, bad DSN
        raise DevError(
            f"PostgreSQL at {safe_dsn} is not usable ({exc.__class__.__name__}: {exc}); "
            "start it with `make services` or set AUTH_DATABASE_URL"
        ) from None
    try:
        asyncio.run(_ping_redis(redis_url))
    except Exception as exc:  # refused, timeout, auth
        raise DevError(
            f"Redis at {redis_url} is not reachable ({exc.__class__.__name__}); "
            "start it with `make services` or set AUTH_REDIS_URL"
        ) from None
    return [f"created database {safe_dsn}"] if created else []


# --- children --------------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGTERM if `auth-service dev` itself dies (even by SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def busy_ports_error(wanted: Mapping[str, int]) -> str | None:
    """One line naming every port of ``wanted`` (role → port) that is in use, or None.

    Each busy port comes with the variable that moves it, since `make dev` passes
    no options: ``AUTH_DEV_GATEWAY_PORT=8090 make dev``.
    """
    busy = [(name, port) for name, port in wanted.items() if not _port_free(port)]
    if not busy:
        return None
    listed = ", ".join(
        f"{port} ({name}; move it with {PORT_VARIABLES[name]}=<port>)" for name, port in busy
    )
    word = "port" if len(busy) == 1 else "ports"
    return f"{word} in use: {listed} (in the environment or .env)"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Child:
    """One child process of the topology."""

    name: str
    argv: list[str]
    ready: Callable[[], bool] | None = None
    """Health check polled after start; ``None`` means: wait for a clean exit."""
    stop_signal: int = signal.SIGTERM
    timeout: float = 30.0
    proc: subprocess.Popen[bytes] | None = None
    pump: threading.Thread | None = field(default=None, repr=False)


class Supervisor:
    """Starts children in order, streams their output, stops them in reverse."""

    def __init__(self, env: Mapping[str, str], out: IO[str], stop: threading.Event) -> None:
        self.env = dict(env)
        self.out = out
        self.stop_requested = stop
        self.running: list[Child] = []
        self._lock = threading.Lock()
        self._width = 8

    def say(self, text: str, name: str = "dev") -> None:
        """Write one prefixed line to the console."""
        with self._lock:
            self.out.write(f"{name:<{self._width}}| {text}\n")
            self.out.flush()

    def _pump(self, child: Child) -> None:
        assert child.proc is not None and child.proc.stdout is not None
        for raw in iter(child.proc.stdout.readline, b""):
            self.say(raw.decode("utf-8", "replace").rstrip("\n"), child.name)

    def start(self, child: Child) -> None:
        """Start ``child`` and wait until it is healthy (or has exited 0)."""
        child.proc = subprocess.Popen(  # noqa: S603 - argv built here, no shell
            child.argv,
            env=self.env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,  # Ctrl-C reaches only us; we stop children in order
            preexec_fn=_die_with_parent,
        )
        child.pump = threading.Thread(target=self._pump, args=(child,), daemon=True)
        child.pump.start()
        self.say(f"started {child.name} pid {child.proc.pid}: {' '.join(child.argv)}")
        deadline = time.monotonic() + child.timeout
        delay = 0.05
        while True:
            code = child.proc.poll()
            if child.ready is None and code is not None:
                child.pump.join(5)
                if code != 0:
                    raise DevError(f"{child.name} failed with exit status {code}")
                return
            if code is not None:
                child.pump.join(5)
                raise DevError(f"{child.name} exited with status {code} while starting")
            if child.ready is not None and child.ready():
                self.running.append(child)
                self.say(f"{child.name} is ready")
                return
            if self.stop_requested.is_set():
                self.running.append(child)
                raise DevError(f"interrupted while waiting for {child.name}")
            if time.monotonic() > deadline:
                self.running.append(child)
                raise DevError(f"{child.name} did not become ready within {child.timeout:.0f}s")
            self.stop_requested.wait(delay)
            delay = min(delay * 1.5, 0.5)

    def watch(self) -> Child | None:
        """Block until a stop is requested (None) or a child exits on its own (that child)."""
        while not self.stop_requested.wait(0.2):
            for child in self.running:
                if child.proc is not None and child.proc.poll() is not None:
                    return child
        return None

    def stop_all(self, timeout: float = 15.0) -> None:
        """Stop running children in reverse start order; kill what does not exit in time."""
        for child in reversed(self.running):
            proc = child.proc
            if proc is None:
                continue
            if proc.poll() is None:
                self.say(f"stopping {child.name} (pid {proc.pid})")
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(child.stop_signal)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.say(f"{child.name} did not stop in {timeout:.0f}s, killing it")
                    proc.kill()
                    proc.wait(5)
            if child.pump is not None:
                child.pump.join(2)
            self.say(f"{child.name} exited with status {proc.returncode}")
        self.running.clear()


def build_children(
    dev: DevEnvironment, ports: DevPorts, nginx: str, nginx_conf: Path
) -> list[Child]:
    """The ordered children of the topology."""
    py = sys.executable
    auth = f"http://127.0.0.1:{ports.auth}"
    children: list[Child] = []
    if dev.standin:
        children.append(
            Child(
                "idp",
                [
                    py,
                    "-m",
                    "tests.fakes.keycloak",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(ports.idp),
                    "--realm",
                    dev.realm,
                    "--realm-file",
                    str(REALM_FILE),
                    "--public-base",
                    dev.standin_base,
                    "--backchannel-url",
                    f"{auth}/auth/backchannel-logout",
                ],
                ready=lambda: _http_ok(
                    f"http://127.0.0.1:{ports.idp}/realms/{dev.realm}"
                    "/.well-known/openid-configuration"
                ),
            )
        )
    children += [
        Child("migrate", [py, "-m", "auth_service", "migrate"], ready=None, timeout=120),
        Child(
            "auth",
            [py, "-m", "auth_service", "serve", "--host", "127.0.0.1", "--port", str(ports.auth)],
            ready=lambda: _http_ok(f"{auth}/health/ready"),
            timeout=60,
        ),
        Child(
            "demo",
            demo_command(py, ports.demo),
            ready=lambda: _http_ok(f"http://127.0.0.1:{ports.demo}/"),
        ),
        Child(
            "nginx",
            nginx_command(nginx, nginx_conf),
            ready=lambda: _http_ok(f"http://127.0.0.1:{ports.gateway}/_gateway/health"),
            stop_signal=signal.SIGQUIT,  # graceful: finish in-flight requests
        ),
    ]
    return children


def _banner(dev: DevEnvironment, ports: DevPorts, runtime_dir: Path) -> list[str]:
    public = dev.env["AUTH_PUBLIC_URL"]
    idp = dev.env["AUTH_OIDC_ISSUER"]
    idp_note = (
        "Keycloak stand-in; users alice/alice-password, bob/bob-password, admin/admin-password"
        if dev.standin
        else "external Keycloak"
    )
    token = (
        [
            "  API token     curl -s -d grant_type=password -d client_id=acme-web"
            f" -d username=alice -d password=alice-password {idp}/protocol/openid-connect/token",
        ]
        if dev.standin
        else []
    )
    return [
        "everything is up:",
        f"  gateway       {public}/  (login first, then the demo page behind nginx auth_request)",
        f"  login         {public}/auth/login?rd=/",
        f"  auth-service  http://127.0.0.1:{ports.auth}  (/health/ready, /metrics)",
        f"  demo app      http://127.0.0.1:{ports.demo}  (direct, no auth)",
        f"  IdP issuer    {idp}  ({idp_note})",
        *token,
        f"  runtime dir   {runtime_dir}",
        "press Ctrl-C to stop",
    ]


def run_dev(
    ports: DevPorts,
    runtime_dir: Path,
    environ: Mapping[str, str],
    out: IO[str],
    stop: threading.Event,
) -> int:
    """Run the topology until ``stop`` is set or a child dies; returns the exit status."""
    nginx = find_nginx()
    if not (NGINX_DIR / "gateway.conf.template").is_file():
        raise DevError(f"{NGINX_DIR} is missing: `auth-service dev` needs a source checkout")
    runtime_dir = runtime_dir.resolve()
    runtime_dir.mkdir(parents=True, exist_ok=True)
    dev = dev_environment(environ, ports, runtime_dir)
    if dev.standin and not STANDIN_PACKAGE.is_dir():
        raise DevError(
            f"the Keycloak stand-in ({STANDIN_PACKAGE}) is missing: `auth-service dev` needs "
            "a source checkout of auth-service, or AUTH_OIDC_ISSUER naming a real Keycloak realm"
        )
    try:
        load_settings(dev.env, env_file=False)
    except SettingsError as exc:
        raise DevError("; ".join(exc.problems)) from None
    wanted = {"gateway": ports.gateway, "auth": ports.auth, "demo": ports.demo}
    if dev.standin:
        wanted["idp"] = ports.idp
    busy = busy_ports_error(wanted)
    if busy is not None:
        raise DevError(busy)
    conf = render_nginx(
        runtime_dir / "nginx",
        listen=f"127.0.0.1:{ports.gateway}",
        auth_upstream=f"127.0.0.1:{ports.auth}",
        demo_upstream=f"127.0.0.1:{ports.demo}",
    )
    check_nginx(nginx, conf)

    sup = Supervisor(dev.env, out, stop)
    for note in prepare_backends(dev.env):
        sup.say(note)
    status = 0
    try:
        for child in build_children(dev, ports, nginx, conf):
            sup.start(child)
        for line in _banner(dev, ports, runtime_dir):
            sup.say(line)
        died = sup.watch()
        if died is not None:
            assert died.proc is not None
            sup.say(f"{died.name} exited unexpectedly with status {died.proc.returncode}")
            status = 1
    except DevError as exc:
        sup.say(f"error: {exc}")
        status = 1
    finally:
        sup.stop_all()
    if status == 0:
        sup.say("stopped")
    return status


def resolve_ports(options: Mapping[str, int | None], environ: Mapping[str, str]) -> DevPorts:
    """Each port: its option, else its ``AUTH_DEV_*_PORT`` (environment, then ``.env``), else
    the default.

    Raises:
        DevError: a variable that is not a port number, naming it.
    """
    values = {**read_env_file(environ), **environ}
    chosen: dict[str, int] = {}
    for name, variable in PORT_VARIABLES.items():
        option = options.get(name)
        raw = values.get(variable, "").strip()
        if option is not None:
            chosen[name] = option
        elif raw:
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise DevError(f"{variable}: {raw!r} is not a TCP port number")
            chosen[name] = int(raw)
    return DevPorts(**chosen)


def _port_option(name: str, default: int, what: str) -> Callable[[Callable[..., None]], Any]:
    return click.option(
        f"--{name}-port",
        type=click.IntRange(1, 65535),
        default=None,
        help=f"{what} [default: {default}; or {PORT_VARIABLES[name]}]",
    )


@click.command(
    "dev",
    epilog=f"Needs a source checkout of auth-service: {ROOT} must hold "
    "tests/fakes/keycloak (the Keycloak stand-in), gateway_config/ and deploy/demo. "
    "Settings: the environment, then .env; unset required ones get development values.",
)
@_port_option(
    "gateway", DevPorts.gateway, "nginx gateway port (browsers use http://localhost:PORT)."
)
@_port_option("auth", DevPorts.auth, "auth-service port.")
@_port_option("demo", DevPorts.demo, "Demo downstream app port.")
@_port_option("idp", DevPorts.idp, "Keycloak stand-in port (unused with a real Keycloak).")
@click.option(
    "--runtime-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where nginx's config, pid and temp files and the audit spool go. "
    f"[default: {ROOT / '.dev'}; or AUTH_DEV_RUNTIME_DIR]",
)
def dev_command(
    gateway_port: int | None,
    auth_port: int | None,
    demo_port: int | None,
    idp_port: int | None,
    runtime_dir: Path | None,
) -> None:
    """Run the whole topology natively (IdP stand-in, auth-service, demo app, nginx gateway).

    Needs a source checkout (see below); `make dev` runs it with the defaults.
    """
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        options = {"gateway": gateway_port, "auth": auth_port, "demo": demo_port, "idp": idp_port}
        ports = resolve_ports(options, os.environ)
        if runtime_dir is None:
            configured = {**read_env_file(os.environ), **os.environ}.get("AUTH_DEV_RUNTIME_DIR")
            unset = configured is None or configured.strip() == ""
            runtime_dir = ROOT / ".dev" if unset else Path(str(configured).strip())
        status = run_dev(ports, runtime_dir, os.environ, sys.stdout, stop)
    except DevError as exc:
        click.echo(f"auth-service dev: {exc}", err=True)
        status = 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.exit(status)


if __name__ == "__main__":  # pragma: no cover - `python -m auth_service.devstack`
    dev_command()
