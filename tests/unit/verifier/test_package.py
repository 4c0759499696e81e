"""The package boundary: what importing it loads, what it exports, and that its example runs."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

import auth_service.verifier as verifier_package

ROOT = Path(__file__).resolve().parents[3]


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter at the repository root; return its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_imports_nothing_else_from_auth_service() -> None:
    """Importing the verifier loads only ``auth_service`` and ``auth_service.verifier*``."""
    out = run_python(
        "import auth_service.verifier, sys; "
        "print(sorted(m for m in sys.modules if m.startswith('auth_service')))"
    )
    loaded = ast.literal_eval(out.strip())
    assert "auth_service.verifier" in loaded
    assert all(m == "auth_service" or m.startswith("auth_service.verifier") for m in loaded)


def test_litestar_is_loaded_only_on_demand() -> None:
    """Litestar is not imported with the package, only when a Litestar helper is used."""
    out = run_python(
        "import sys, auth_service.verifier as v; a = 'litestar' in sys.modules; "
        "v.requires_scope; print(a, 'litestar' in sys.modules)"
    )
    assert out.split() == ["False", "True"]


def test_source_imports_stay_inside_the_boundary() -> None:
    """Statically, modules import only stdlib, joserfc, httpx, msgspec, (one module) litestar and,
    when installed, pybase64 (`test_works_without_pybase64`)."""
    allowed = {"joserfc", "httpx", "msgspec", "pybase64"} | set(sys.stdlib_module_names)
    for path in Path(verifier_package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                ok = top in allowed or (top == "litestar" and path.name == "litestar.py")
                assert ok, f"{path.name} imports {name}"


def test_works_without_pybase64() -> None:
    """A downstream service without pybase64 gets the standard library's decoder, same answers."""
    out = run_python(
        "import sys; sys.modules['pybase64'] = None\n"
        "from auth_service.verifier import tokens as t\n"
        "print(t._decode_padded is t._binascii_decode, t._b64url_decode('eyJhIjoxfQ'))\n"
        "try:\n    t._b64url_decode('eyJhIjoxfR')\nexcept ValueError:\n    print('refused')"
    )
    assert out.split("\n")[:2] == ["True b'{\"a\":1}'", "refused"]


def test_every_exported_name_resolves() -> None:
    """Each name in ``__all__`` is importable, including the lazily loaded Litestar ones."""
    for name in verifier_package.__all__:
        assert getattr(verifier_package, name) is not None
    assert verifier_package.MISSING is verifier_package.tokens.MISSING


def docstring_example() -> str:
    """The ``::`` code block of the package docstring, dedented."""
    doc = verifier_package.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    return textwrap.dedent(block)


def test_docstring_example_is_short() -> None:
    """The usage example in the package docstring is at most 10 lines."""
    assert len(docstring_example().strip().splitlines()) <= 10


async def test_docstring_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example builds a working app: without a token its route answers 401."""
    module = types.ModuleType("verifier_docstring_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # Litestar resolves hints there
    exec(compile(docstring_example(), "<verifier docstring>", "exec"), module.__dict__)
    app = module.app
    assert isinstance(app, Litestar)
    async with AsyncTestClient(app) as client:
        response = await client.get("/orders")
    assert response.status_code == 401
    assert response.json()["reason"] == "missing_token"
