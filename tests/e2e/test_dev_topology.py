"""`make dev` smoke: `auth-service dev` brings the topology up on free ports and down on SIGTERM."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from auth_service.devstack import PORT_VARIABLES
from tests.conftest import ADMIN_DSN, REDIS_URL, RUN_ID, _with_db
from tests.e2e.conftest import _stop
from tests.support.processes import ROOT, free_port, wait_until

pytestmark = pytest.mark.e2e

STARTED = re.compile(r"started (\w+) pid (\d+)")


def _children_of(root: int) -> set[int]:
    """Every live descendant of ``root`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = [root]
    while frontier:
        current = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == current and pid not in found:
                found.add(pid)
                frontier.append(pid)
    return found


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _browser_login_lands_on_the_demo_page(gateway: int) -> None:
    """As the README says: `/` → the stand-in's login form → sign in as alice → the demo page
    (redirects followed like a browser, the form filled in from its hidden fields)."""
    with httpx.Client(follow_redirects=True, timeout=10, headers={"Accept": "text/html"}) as web:
        form = web.get(f"http://localhost:{gateway}/")
        assert form.status_code == 200 and "kc-form-login" in form.text, form.text
        action = re.search(r"action='([^']+)'", form.text)
        assert action is not None
        hidden = re.findall(r"name='(\w+)' value='([^']*)'", form.text)
        fields = {name: html.unescape(value) for name, value in hidden}
        fields |= {"username": "alice", "password": "alice-password"}
        page = web.post(html.unescape(action.group(1)), data=fields)
    assert page.status_code == 200, page.text
    assert page.url == httpx.URL(f"http://localhost:{gateway}/")
    assert "alice" in page.text and "x-auth-user" in page.text.lower()


@pytest.fixture
def dev_database() -> Iterator[str]:
    """A database name that does not exist yet (`auth-service dev` must create it)."""
    name = f"auth_dev_{RUN_ID}"
    yield _with_db(ADMIN_DSN, name)

    async def drop() -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def test_dev_starts_topology_serves_a_request_and_stops_every_child(
    nginx_binary: str, dev_database: str, redis_prefix: str, tmp_path: Path
) -> None:
    """`auth-service dev` on free ports (AUTH_DEV_*_PORT, as `make dev` users move them): the
    README's front page and token curl work as written; SIGTERM stops every child (and
    grandchild) in reverse order and exits 0."""
    ports = {name: free_port() for name in ("gateway", "auth", "demo", "idp")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "OTEL_"))}
    env.update(
        AUTH_ENV_FILE=os.devnull,
        AUTH_DATABASE_URL=dev_database,
        AUTH_REDIS_URL=REDIS_URL,
        AUTH_REDIS_PREFIX=f"{redis_prefix}dev:",
        PYTHONUNBUFFERED="1",
    )
    env.update({PORT_VARIABLES[name]: str(port) for name, port in ports.items()})
    log_path = tmp_path / "dev.log"
    argv = [sys.executable, "-m", "auth_service.devstack"]
    argv += ["--runtime-dir", str(tmp_path / "runtime")]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"auth-service dev exited:\n{log_path.read_text()}")
            return "everything is up" in log_path.read_text()

        wait_until(up, 60, "auth-service dev to report everything up")
        output = log_path.read_text()
        assert "created database" in output
        started = {name: int(pid) for name, pid in STARTED.findall(output)}
        assert list(started) == ["idp", "migrate", "auth", "demo", "nginx"]
        descendants = _children_of(proc.pid)
        assert {started[n] for n in ("idp", "auth", "demo", "nginx")} <= descendants
        assert len(descendants) >= 5  # nginx worker included

        mint = httpx.post(
            f"http://127.0.0.1:{ports['idp']}/_standin/mint", json={"username": "alice"}
        )
        token = mint.json()["access_token"]
        r = httpx.get(
            f"http://127.0.0.1:{ports['gateway']}/orders/1",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "X-Request-ID": "dev-smoke-1",
            },
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assert r.json()["identity"]["x-auth-user"] == "alice"
        assert r.json()["request_id"] == "dev-smoke-1"

        front = httpx.get(
            f"http://127.0.0.1:{ports['gateway']}/", headers={"Accept": "text/html"}, timeout=10
        )
        assert front.status_code == 302, front.text
        login = f"http://localhost:{ports['gateway']}/auth/login?rd="
        assert front.headers["location"].startswith(login)

        _browser_login_lands_on_the_demo_page(ports["gateway"])

        readme = (ROOT / "README.md").read_text()
        block = readme.split("<!-- dev-token-curl -->")[1].split("<!-- /dev-token-curl -->")[0]
        script = block.split("```sh\n")[1].split("```")[0]
        script = script.replace("127.0.0.1:8081", f"127.0.0.1:{ports['idp']}")
        script = script.replace("localhost:8080", f"localhost:{ports['gateway']}")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["identity"]["x-auth-user"] == "alice"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log_path.read_text()
    finally:
        _stop(proc)
    wait_until(
        lambda: not any(_alive(pid) for pid in descendants), 10, "every child of dev to exit"
    )
    output = log_path.read_text()
    stops = re.findall(r"stopping (\w+)", output)
    assert stops == ["nginx", "demo", "auth", "idp"]
