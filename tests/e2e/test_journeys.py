"""Whole journeys from a cold start, through the real gateway (issue 11).

A brand-new database owned by a plain role (no superuser, no ``CREATEROLE``) and
migrated by the real ``auth-service migrate`` command as that owner, the service
running as a least-privilege role that owns nothing; a new Redis prefix; the
Keycloak stand-in as a process; ``auth-service serve`` with two workers; the demo
downstream; nginx with the shipped gateway config. Then, as a
browser user, an API client, an auditor and the IdP would:

* browser: login → TOTP setup page → confirm → logout → login again → MFA page →
  code → a ``require_mfa`` route passes with ``X-Auth-MFA: totp``, and the
  downstream verifies an ``X-Auth-Assertion`` whose ``amr`` has ``otp``;
* API client: bearer → TOTP verified through the JSON API → a ``require_mfa``
  route passes with a second token of the same sid, on both workers; a token of
  another sid does not;
* the IdP's back-channel logout ends the browser session and the sid's bearer
  tokens on both workers;
* auditor: finds the events of these journeys by request id; ``audit verify`` passes.

Nothing here reaches into a process: every step is an HTTP request or a command.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import asyncpg
import httpx
import pyotp
import pytest

from auth_service.verifier.assertion import AssertionVerifier
from tests.conftest import ADMIN_DSN, DATA, REDIS_URL, _with_db
from tests.e2e.conftest import Gateway, StandIn, _stop, start_gateway, start_standin
from tests.integration.mfa.qr import decode_svg_qr
from tests.support.processes import ROOT, ServiceProcess, free_port, wait_until

pytestmark = pytest.mark.e2e

HTML = {"Accept": "text/html,application/xhtml+xml"}
JSON = {"Accept": "application/json"}


# -- the topology, cold ----------------------------------------------------------------------


@dataclass
class Topology:
    """Every process of one cold-started deployment."""

    standin: StandIn
    service: ServiceProcess
    gateway: Gateway
    env: dict[str, str]

    @property
    def url(self) -> str:
        """The gateway: where browsers and API clients go."""
        return self.gateway.url


def _auth_service_exe() -> str:
    return str(Path(sys.executable).parent / "auth-service")


@pytest.fixture(scope="module")
def cold(
    nginx_binary: str, secret_key_b64: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    """A deployment started from nothing: new database, new Redis prefix, 2 workers."""
    # The database as a managed PostgreSQL hands it out: owned by a role that is neither
    # superuser nor allowed to create roles. The DBA's part (CREATE ROLE auth_app, a login
    # role that is a member of it) is done here as the superuser, as the README tells.
    tag = secrets.token_hex(4)
    dbname, owner, runtime = f"auth_journey_{tag}", f"journey_owner_{tag}", f"journey_rt_{tag}"

    async def create() -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(f'CREATE ROLE "{owner}" LOGIN NOSUPERUSER NOCREATEROLE')
            await conn.execute(f'CREATE DATABASE "{dbname}" OWNER "{owner}"')
            await conn.execute(
                "DO $$ BEGIN CREATE ROLE auth_app NOLOGIN; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
            await conn.execute(f'CREATE ROLE "{runtime}" LOGIN NOSUPERUSER NOCREATEROLE')
            await conn.execute(f'GRANT auth_app TO "{runtime}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            await conn.execute(f'DROP ROLE IF EXISTS "{runtime}"')
            await conn.execute(f'DROP ROLE IF EXISTS "{owner}"')
        finally:
            await conn.close()

    asyncio.run(create())
    gateway_port = free_port()
    public = f"http://127.0.0.1:{gateway_port}"
    standin = start_standin(extra_args=["--backchannel-url", f"{public}/auth/backchannel-logout"])
    env = {
        "AUTH_OIDC_ISSUER": standin.issuer,
        "AUTH_OIDC_CLIENT_SECRET": "auth-service-secret",
        "AUTH_OIDC_AUDIENCES": "orders-api,auth-service",
        "AUTH_PUBLIC_URL": public,
        "AUTH_DATABASE_URL": _as(runtime, dbname),
        "AUTH_MIGRATE_DATABASE_URL": _as(owner, dbname),
        "AUTH_REDIS_URL": REDIS_URL,
        "AUTH_REDIS_PREFIX": f"journey:{secrets.token_hex(4)}:",
        "AUTH_POLICY_FILE": str(DATA / "policy.toml"),
        "AUTH_SECRET_KEYS": f"k1:{secret_key_b64}",
        "AUTH_ALLOWED_REDIRECT_HOSTS": "127.0.0.1",
        "AUTH_CLAIM_HEADERS": "tenant_id=X-Auth-Tenant",
        "AUTH_AUDIT_SPOOL_DIR": str(tmp_path_factory.mktemp("journey-spool")),
        "AUTH_LOG_FORMAT": "json",
        "AUTH_ACCESS_LOG_CHECKS": "all",  # which worker answered: read from the access lines
    }
    migrate = subprocess.run(
        [_auth_service_exe(), "migrate"],
        env={**os.environ, **env, "AUTH_ENV_FILE": "/nonexistent"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrate.returncode == 0, migrate.stderr

    # The service itself owns nothing: it may not even read the schema's migration table.
    async def runtime_cannot_alter() -> str:
        conn = await asyncpg.connect(env["AUTH_DATABASE_URL"])
        try:
            await conn.execute("ALTER TABLE audit_events DISABLE TRIGGER ALL")
        except asyncpg.InsufficientPrivilegeError as exc:
            return type(exc).__name__
        finally:
            await conn.close()
        return "allowed"

    assert asyncio.run(runtime_cannot_alter()) == "InsufficientPrivilegeError"
    service = ServiceProcess(env, workers=2).start()
    demo_port = free_port()
    from auth_service.devstack import demo_command

    demo = subprocess.Popen(demo_command(sys.executable, demo_port), cwd=ROOT)
    try:
        wait_until(lambda: _ok(f"http://127.0.0.1:{demo_port}/"), 15, "demo app")
        wait_until(lambda: _ok(f"{service.url}/health/ready"), 30, "auth-service ready")
        gateway = start_gateway(
            nginx_binary,
            tmp_path_factory.mktemp("journey-nginx"),
            port=gateway_port,
            auth_port=service.port,
            demo_port=demo_port,
        )
        yield Topology(standin, service, gateway, env)
        _stop(gateway.proc)
    finally:
        service.stop()
        _stop(demo)
        _stop(standin.proc)
        asyncio.run(drop())


def _as(user: str, dbname: str) -> str:
    """The test cluster's DSN for ``user`` on ``dbname`` (trust authentication)."""
    parts = urlsplit(_with_db(ADMIN_DSN, dbname))
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}@{host}").geturl()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


# -- a small browser -------------------------------------------------------------------------


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(
                {"action": a.get("action", ""), "method": a.get("method", "get"), "fields": {}}
            )
        elif tag in ("input", "button") and self.forms and a.get("name"):
            if a.get("type") in ("submit", "button") and tag == "input":
                return
            self.forms[-1]["fields"].setdefault(a["name"], a.get("value", ""))


class Browser:
    """Follows redirects across hosts, keeps cookies, submits forms as a browser does."""

    def __init__(self, rid_prefix: str) -> None:
        self.http = httpx.Client(follow_redirects=False, trust_env=False, timeout=15)
        self.trail: list[tuple[int, str]] = []
        self.rid_prefix = rid_prefix
        self.sent = 0

    def _rid(self) -> str:
        self.sent += 1
        return f"{self.rid_prefix}{self.sent}"

    def go(
        self,
        url: str,
        *,
        method: str = "GET",
        data: dict[str, str] | None = None,
        max_hops: int = 12,
    ) -> httpx.Response:
        for _ in range(max_hops):
            r = self.http.request(
                method, url, data=data, headers={**HTML, "X-Request-ID": self._rid()}
            )
            self.trail.append((r.status_code, url))
            if r.status_code not in (301, 302, 303, 307):
                return r
            url = urljoin(url, r.headers["location"])
            method, data = "GET", None
        raise AssertionError(f"too many redirects: {self.trail[-12:]}")

    def submit(self, page: httpx.Response, values: dict[str, str]) -> httpx.Response:
        """Fill the page's first form that has all of ``values``' fields and send it."""
        parser = _Forms()
        parser.feed(page.text)
        for form in parser.forms:
            if set(values) <= set(form["fields"]):
                fields = {**form["fields"], **values}
                target = urljoin(str(page.url), form["action"] or str(page.url))
                return self.go(target, method=form["method"].upper(), data=fields)
        raise AssertionError(f"no form with {sorted(values)} on {page.url}:\n{page.text[:2000]}")

    def login(self, start: str, username: str) -> httpx.Response:
        """Open ``start``; on the IdP's login form, sign in; return where it lands."""
        page = self.go(start)
        assert "kc-form-login" in page.text, (self.trail, page.text[:500])
        return self.submit(page, {"username": username, "password": f"{username}-password"})


def _totp_secret_from(page: httpx.Response) -> str:
    svg = re.search(r"<svg.*?</svg>", page.text, re.S)
    assert svg is not None, page.text[:1000]
    (uri,) = decode_svg_qr(svg.group(0))
    assert uri.startswith("otpauth://totp/"), uri
    return parse_qs(urlsplit(uri).query)["secret"][0]


def _code(secret: str, step_offset: int) -> str:
    """The code of the step ``step_offset`` steps from now (±1 is accepted; each once)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * step_offset)


def _demo_identity(r: httpx.Response) -> dict[str, str]:
    assert r.status_code == 200, (r.status_code, r.text[:500])
    identity: dict[str, str] = r.json()["identity"]
    return identity


def _verify_assertion(cold: Topology, token: str) -> Any:
    async def run() -> Any:
        async with httpx.AsyncClient(trust_env=False) as http:
            # aud is the original host as the gateway saw it (Host, with its port)
            audience = urlsplit(cold.url).netloc
            verifier = AssertionVerifier.for_service(cold.env["AUTH_PUBLIC_URL"], audience, http)
            return await verifier.verify(token)

    return asyncio.run(run())


def _pids_answering(cold: Topology, rid_prefix: str) -> dict[int, set[int]]:
    seen: dict[int, set[int]] = {}
    for line in cold.service.logs().splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("event") == "request" and str(event.get("request_id", "")).startswith(
            rid_prefix
        ):
            seen.setdefault(event["pid"], set()).add(event["status"])
    return seen


def _each_worker(cold: Topology, token: str, path: str, prefix: str, n: int = 40) -> set[int]:
    """Ask ``n`` times on new connections, straight at the service's forward-auth endpoint, so
    the kernel spreads the checks over both workers; returns the statuses."""
    statuses: set[int] = set()
    for i in range(n):
        with httpx.Client(trust_env=False) as c:
            r = c.get(
                f"{cold.service.url}/authz/auth-request",
                headers={
                    "Authorization": f"Bearer {token}",
                    "X-Original-URL": f"{cold.url}{path}",
                    "X-Original-Method": "GET",
                    "X-Request-ID": f"{prefix}{i}",
                },
            )
        statuses.add(r.status_code)
    wait_until(lambda: len(_pids_answering(cold, prefix)) == 2, 10, "both workers in the log")
    return statuses


# -- the journeys ----------------------------------------------------------------------------


def test_browser_journey_enrolls_totp_and_passes_a_require_mfa_route(cold: Topology) -> None:
    b = Browser("journey-browser-")
    target = f"{cold.url}/payments/1"
    # 1. login; the payments rule needs TOTP, which alice has not set up yet.
    landed = b.login(target, "alice")
    assert landed.status_code in (200, 401, 403), b.trail
    # 2. the TOTP setup page: scan the QR, confirm with the current code.
    setup = b.go(f"{cold.url}/auth/mfa/setup?rd=/payments/1")
    assert setup.status_code == 200, setup.text[:500]
    secret = _totp_secret_from(setup)
    confirmed = b.submit(setup, {"code": _code(secret, 0)})
    assert confirmed.status_code == 200, confirmed.text[:1000]
    assert len(re.findall(r"<li><code>", confirmed.text)) == 10  # recovery codes, shown once
    # 3. logout ends the session here and at the IdP.
    out = b.go(f"{cold.url}/auth/logout?rd=/")
    assert out.status_code == 200, b.trail
    assert not any("auth_session" in c for c in b.http.cookies.keys())  # noqa: SIM118
    # 4. login again: enrolled, so the callback sends the browser to the MFA page.
    b.trail.clear()
    mfa_page = b.login(target, "alice")
    assert "/auth/mfa" in str(mfa_page.url), b.trail
    assert mfa_page.status_code == 200
    # 5. a code of the next step (the current one was used to confirm) → back to the target.
    passed = b.submit(mfa_page, {"code": _code(secret, 1)})
    assert passed.status_code == 200, (b.trail[-4:], passed.text[:500])
    assert str(passed.url) == target
    # 6. the require_mfa route passes with X-Auth-MFA: totp and a verifiable assertion.
    r = b.http.get(target, headers={**JSON, "X-Request-ID": "journey-browser-1"})
    identity = _demo_identity(r)
    assert identity["x-auth-mfa"] == "totp"
    assert identity["x-auth-user"] == "alice"
    claims = _verify_assertion(cold, identity["x-auth-assertion"])
    assert "otp" in claims.amr
    assert claims.sub == identity["x-auth-subject"]


def test_api_client_journey_verifies_totp_for_the_sid_on_both_workers(cold: Topology) -> None:
    sid = f"journey-{secrets.token_hex(6)}"
    first = cold.standin.mint(username="bob", sid=sid)
    bearer = {"Authorization": f"Bearer {first}"}
    with httpx.Client(trust_env=False, timeout=10) as c:
        denied = c.get(
            f"{cold.url}/payments/1",
            headers={**JSON, **bearer, "X-Request-ID": "journey-api-denied"},
        )
        assert denied.status_code == 401
        assert "insufficient_user_authentication" in denied.headers["www-authenticate"]
        enrollment = c.post(f"{cold.url}/mfa/totp/enrollment", headers=bearer)
        assert enrollment.status_code == 201, enrollment.text
        secret = enrollment.json()["secret"]
        confirm = c.post(
            f"{cold.url}/mfa/totp/enrollment/confirm",
            headers=bearer,
            json={"code": _code(secret, 0)},
        )
        assert confirm.status_code == 200, confirm.text
        verify = c.post(
            f"{cold.url}/mfa/totp/verify",
            headers={**bearer, "X-Request-ID": "journey-api-verify"},
            json={"code": _code(secret, 1)},
        )
        assert verify.status_code == 200, verify.text
        assert verify.json()["mfa"] == "totp"
        # A second token of the same Keycloak session counts as MFA-verified...
        second = cold.standin.mint(username="bob", sid=sid)
        assert second != first
        r = c.get(
            f"{cold.url}/payments/1",
            headers={**JSON, "Authorization": f"Bearer {second}", "X-Request-ID": "journey-api-1"},
        )
        identity = _demo_identity(r)
        assert identity["x-auth-mfa"] == "totp"
        assert "otp" in _verify_assertion(cold, identity["x-auth-assertion"]).amr
    # ...on both workers; a token of another session of the same user does not.
    assert _each_worker(cold, second, "/payments/1", "journey-api-both-") == {200}
    other = cold.standin.mint(username="bob")
    assert _each_worker(cold, other, "/payments/1", "journey-api-other-") == {401}


def test_backchannel_logout_ends_the_browser_session_and_the_sids_tokens(cold: Topology) -> None:
    def bobs_sessions() -> set[str]:
        r = httpx.get(f"{cold.standin.base}/_standin/sessions", params={"username": "bob"})
        return {s["sid"] for s in r.json() if "auth-service" in s["clients"]}

    before = bobs_sessions()
    b = Browser("journey-bcl-browser-")
    landed = b.login(f"{cold.url}/orders/1", "bob")
    assert landed.status_code == 200, b.trail
    assert _demo_identity(b.http.get(f"{cold.url}/orders/1", headers=JSON))["x-auth-user"] == "bob"
    # The Keycloak session of that login, and a bearer token of the same session (an SPA of
    # the same login calling an API).
    (sid,) = bobs_sessions() - before
    token = cold.standin.mint(username="bob", sid=sid)
    assert _each_worker(cold, token, "/orders/1", "journey-bcl-before-") == {200}
    # The IdP ends the session (an admin, or the user elsewhere): it sends the back-channel
    # logout token to this service's registered URL, through the gateway.
    r = httpx.post(f"{cold.standin.base}/_standin/end-session", json={"sid": sid}, timeout=10)
    assert r.status_code == 200
    assert r.json()["deliveries"] == [200], r.json()
    # The browser session is gone: an API call with its cookie is now unauthenticated...
    after = b.http.get(f"{cold.url}/orders/1", headers=JSON)
    assert after.status_code == 401, after.text[:300]
    # ...and so are the session's bearer tokens, on both workers (revocations reach every
    # worker within a second; poll rather than wait).
    rounds = iter(range(1000))
    wait_until(
        lambda: _each_worker(cold, token, "/orders/1", f"journey-bcl-{next(rounds)}-") == {401},
        5,
        "the sid's bearer tokens refused by both workers",
    )


def test_auditor_finds_the_journeys_by_request_id_and_the_chain_verifies(cold: Topology) -> None:
    admin = cold.standin.mint(username="admin")

    def types(request_id: str) -> set[str]:
        with httpx.Client(trust_env=False, timeout=10) as c:
            r = c.get(
                f"{cold.service.url}/admin/audit-events",
                params={"request_id": request_id, "limit": "50"},
                headers={"Authorization": f"Bearer {admin}"},
            )
        assert r.status_code == 200, r.text
        return {e["type"] for e in r.json()["events"]}

    def browser_types() -> set[str]:
        found: set[str] = set()
        for n in range(1, 40):
            found |= types(f"journey-browser-{n}")
        return found

    # The API client's journey: its first call was refused for want of TOTP, then verified.
    wait_until(lambda: "access.denied" in types("journey-api-denied"), 15, "the API denial")
    assert types("journey-api-verify") >= {"mfa.success"}
    # The browser's: two logins, TOTP set up and confirmed, a logout, a code on the MFA page.
    wanted = {"login.success", "mfa.enrollment.confirmed", "mfa.success"}
    wait_until(lambda: wanted <= browser_types(), 15, f"browser events {sorted(wanted)}")
    verify = subprocess.run(
        [_auth_service_exe(), "audit", "verify"],
        env={**os.environ, **cold.env, "AUTH_ENV_FILE": "/nonexistent"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
