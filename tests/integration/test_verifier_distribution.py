"""``auth-service-verifier``: its wheel installs alone and verifies the real service's output.

The wheel is built from ``deploy/verifier`` (offline, with the setuptools of this
environment) and installed into fresh virtual environments with nothing but the
wheels of its declared requirements. The examples of ``deploy/verifier/examples``
run there, in a subprocess, against a running ``auth-service serve`` (for its
``X-Auth-Assertion`` and JWKS) and the Keycloak stand-in (for access tokens).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.requirements import Requirement

import auth_service.verifier as verifier_package
from tests.fakes.keycloak import FakeKeycloak
from tests.support.processes import ROOT, ServiceProcess, free_port, wait_until
from tests.support.tokens import b64json, parts
from tests.support.wheelhouse import (
    clean_environment,
    fresh_venv,
    pip_install,
    repack,
    requirement_closure,
)

PROJECT = ROOT / "deploy" / "verifier"
EXAMPLES = PROJECT / "examples"
DISTRIBUTION = "auth-service-verifier"

# Runs in the fresh environment: report what is importable, then call the example
# app in-process (ASGI) with each case read from stdin; print one JSON object.
DRIVER = """
import asyncio, importlib, importlib.metadata, json, sys

def importable(name):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        return False
    return True

probe = {
    "auth_service.app": importable("auth_service.app"),
    "litestar": importable("litestar"),
    "version": importlib.metadata.version("auth-service-verifier"),
}
import auth_service.verifier
probe["verifier_file"] = auth_service.verifier.__file__
import httpx
sys.path.insert(0, sys.argv[1])
app = importlib.import_module(sys.argv[2]).app
cases = json.load(sys.stdin)

async def main():
    answers = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://orders.test") as client:
        for name, (path, headers) in cases.items():
            r = await client.get(path, headers=headers)
            answers[name] = [r.status_code, r.headers.get("content-type", ""), r.json()]
    return answers

print(json.dumps({"probe": probe, "answers": asyncio.run(main())}))
"""


def service_project() -> dict[str, Any]:
    """``[project]`` of the service's ``pyproject.toml``."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        project: dict[str, Any] = tomllib.load(f)["project"]
    return project


def service_version() -> str:
    """``[project].version`` of the service: the single source of both versions."""
    version: str = service_project()["version"]
    return version


def wheel_metadata(wheel: Path) -> Any:
    """The parsed ``METADATA`` of a wheel."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(z.read(name).decode())


def build_wheel(source: Path, into: Path) -> Path:
    """``pip wheel`` of the project at ``source``: offline, with this environment's setuptools."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(into),
            str(source),
        ],
        env=clean_environment(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = into.glob("auth_service_verifier-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The verifier's wheel plus wheels of every distribution its requirements need."""
    house = tmp_path_factory.mktemp("wheelhouse")
    wheel = build_wheel(PROJECT, house)
    requirements = wheel_metadata(wheel).get_all("Requires-Dist")
    roots = [r.split(";", 1)[0] for r in requirements]  # the base and the litestar extra
    for name in sorted(requirement_closure(roots)):
        repack(name, house)
    return house


def the_wheel(house: Path) -> Path:
    """The verifier's wheel in the wheelhouse."""
    (wheel,) = house.glob("auth_service_verifier-*.whl")
    return wheel


def third_party_imports() -> set[str]:
    """Top-level names the verifier's modules import that are not the standard library."""
    names: set[str] = set()
    for path in Path(verifier_package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names)


def test_wheel_ships_the_verifier_only_with_the_service_version(wheelhouse: Path) -> None:
    """Same version as the service; only ``auth_service/verifier/*``; requirements = imports."""
    wheel = the_wheel(wheelhouse)
    meta = wheel_metadata(wheel)
    assert meta["Name"] == DISTRIBUTION
    assert meta["Version"] == service_version()
    with zipfile.ZipFile(wheel) as z:
        shipped = {n for n in z.namelist() if ".dist-info/" not in n}
    source = Path(verifier_package.__file__).parent
    assert shipped == {f"auth_service/verifier/{p.name}" for p in source.iterdir() if p.is_file()}
    # No auth_service/__init__.py: it would shadow the service installed beside it.
    assert "auth_service/__init__.py" not in shipped

    base, extra = set(), set()
    extras = {"litestar": "litestar", "pybase64": "fast"}  # optional imports → their extra
    for raw in meta.get_all("Requires-Dist"):
        req = Requirement(raw)
        (extra if req.marker is not None else base).add(req.name)
        if req.marker is not None:
            assert req.marker.evaluate({"extra": extras[req.name]})
            assert not req.marker.evaluate({"extra": ""})
    assert base == third_party_imports() - set(extras) == {"joserfc", "httpx", "msgspec"}
    # The same version ranges as the service, which is tested with them.
    service = {r.name: r.specifier for r in map(Requirement, service_project()["dependencies"])}
    for raw in meta.get_all("Requires-Dist"):
        req = Requirement(raw)
        assert req.specifier == service[req.name], req.name
    assert extra == set(extras) <= third_party_imports()
    assert meta.get_all("Provides-Extra") == ["litestar", "fast"]


def test_a_wheel_built_from_the_sdist_equals_the_direct_one(
    wheelhouse: Path, tmp_path: Path
) -> None:
    """The sdist (what publishing uploads beside the wheel) builds without the repository."""
    done = subprocess.run(
        [
            sys.executable,
            "-B",
            "-c",
            "import sys, build_backend; print(build_backend.build_sdist(sys.argv[1]))",
            str(tmp_path),
        ],
        cwd=PROJECT,
        env=clean_environment(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    sdist = tmp_path / done.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        tar.extractall(tmp_path / "unpacked", filter="data")
    expected = {"README.md", "VERSION", "examples/asgi_app.py", "examples/litestar_app.py"}
    assert expected <= names
    assert not [n for n in names if "cache" in n or n.endswith(".pyc")]
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    assert not (unpacked.parents[1] / "auth_service").exists()  # nothing to borrow from
    rebuilt = build_wheel(unpacked, tmp_path / "wheel")
    direct = the_wheel(wheelhouse)
    with zipfile.ZipFile(rebuilt) as a, zipfile.ZipFile(direct) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        for name in a.namelist():
            if not name.endswith("/RECORD"):
                assert a.read(name) == b.read(name), name


@pytest.fixture
def running_service(idp_env: dict[str, str]) -> Any:
    """``auth-service serve`` whose public URL is its real address (the assertion issuer)."""
    port = free_port()
    env = {**idp_env, "AUTH_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    with ServiceProcess(env, port=port) as service:
        yield service


def assertion_from(service: ServiceProcess, token: str) -> str:
    """The ``X-Auth-Assertion`` the service answers a gateway's allowed check with."""
    answers: list[httpx.Response] = []

    def allowed() -> bool:  # the IdP's keys may still be loading right after start
        r = httpx.get(
            f"{service.url}/authz/auth-request",
            headers={
                "X-Original-URL": "https://orders.test/orders/1",
                "X-Original-Method": "GET",
                "Authorization": f"Bearer {token}",
            },
            timeout=5,
        )
        answers.append(r)
        return r.status_code == 200

    wait_until(allowed, 15, "the service to allow alice's token")
    return answers[-1].headers["x-auth-assertion"]


def run_example(python: Path, module: str, cases: dict[str, Any], env: dict[str, str]) -> Any:
    """Run ``DRIVER`` with ``python -I`` outside the repository; return its JSON."""
    done = subprocess.run(
        [str(python), "-I", "-c", DRIVER, str(EXAMPLES), module],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        cwd=python.parents[2],
        env=clean_environment(env),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_installed_alone_it_verifies_the_service_and_the_idp(
    wheelhouse: Path,
    tmp_path: Path,
    running_service: ServiceProcess,
    idp: FakeKeycloak,
) -> None:
    """Plain ASGI without Litestar, then the Litestar example with the extra, in fresh venvs."""
    token = idp.mint_access_token("alice")
    admin = idp.mint_access_token("admin")  # no realm role app-user
    sub = idp.verify(token)["sub"]
    assertion = assertion_from(running_service, token)
    _, payload, sig = parts(assertion)
    forged = f"{assertion.split('.')[0]}.{b64json({**payload, 'sub': 'mallory'})}.{sig}"
    env = {
        "ASSERTION_ISSUER": running_service.url,
        "ASSERTION_AUDIENCE": "orders.test",
        "TOKEN_ISSUER": idp.issuer,
        "TOKEN_AUDIENCE": "orders-api",
    }
    cases = {
        "assertion": ["/gateway/whoami", {"X-Auth-Assertion": assertion}],
        "forged assertion": ["/gateway/whoami", {"X-Auth-Assertion": forged}],
        "token as assertion": ["/gateway/whoami", {"X-Auth-Assertion": token}],
        "no assertion": ["/gateway/whoami", {}],
        "token": ["/direct/whoami", {"Authorization": f"Bearer {token}"}],
        "assertion as token": ["/direct/whoami", {"Authorization": f"Bearer {assertion}"}],
        "admin token": ["/direct/whoami", {"Authorization": f"Bearer {admin}"}],
    }
    refused = ["forged assertion", "token as assertion", "no assertion", "assertion as token"]

    def check(out: Any, *, admin_status: int) -> None:
        probe, answers = out["probe"], out["answers"]
        assert probe["auth_service.app"] is False
        assert probe["version"] == service_version()
        assert not Path(probe["verifier_file"]).is_relative_to(ROOT)
        for case in ("assertion", "token"):
            status, _, body = answers[case]
            assert status == 200, (case, body)
            assert body["sub"] == sub
            assert "app-user" in body["roles"]
        for case in refused:
            status, content_type, body = answers[case]
            assert status == 401, (case, body)
            assert content_type.startswith("application/problem+json")
        assert answers["no assertion"][2]["reason"] == "missing_token"
        assert answers["admin token"][0] == admin_status

    plain = fresh_venv(tmp_path / "plain")
    pip_install(plain, wheelhouse, DISTRIBUTION)
    out = run_example(plain, "asgi_app", cases, env)
    assert out["probe"]["litestar"] is False  # the base install does not pull Litestar
    check(out, admin_status=200)  # the plain example checks the token, not a role

    with_litestar = fresh_venv(tmp_path / "litestar")
    pip_install(with_litestar, wheelhouse, f"{DISTRIBUTION}[litestar]")
    out = run_example(with_litestar, "litestar_app", cases, env)
    assert out["probe"]["litestar"] is True
    check(out, admin_status=403)  # the Litestar example requires the realm role app-user
