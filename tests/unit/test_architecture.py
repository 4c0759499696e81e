"""Structure the type checker cannot see: import layers, and no truthiness swaps."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from importlinter import cli

import auth_service

PACKAGE = Path(auth_service.__file__).parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"


def test_import_contracts_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    """The import-linter contracts of pyproject.toml hold: layers from config/errors up to
    app, no cycles between capability packages, the verifier standalone, the decision
    engine free of I/O modules."""
    code = cli.lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out


def _default_swaps(tree: ast.AST) -> list[int]:
    """Lines of ``x or SomeClass(...)``: an optional collaborator replaced by truthiness."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or)):
            continue
        first, last = node.values[0], node.values[-1]
        if (
            isinstance(first, ast.Name | ast.Attribute)
            and isinstance(last, ast.Call)
            and isinstance(last.func, ast.Name)
            and last.func.id.lstrip("_")[:1].isupper()
        ):
            found.append(node.lineno)
    return found


def test_optional_collaborators_are_tested_with_is_none() -> None:
    """``mfa or _NoMfa()`` swapped an empty `MfaState` (it has ``__len__``) for a no-op;
    optional collaborators are defaulted with ``X() if x is None else x`` instead."""
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line in _default_swaps(ast.parse(path.read_text(), str(path)))
    ]
    assert offenders == []


def test_the_check_sees_the_old_bug() -> None:
    """The check flags the pattern that hid the MFA state, and not its ``is None`` form."""
    assert _default_swaps(ast.parse("self.mfa = mfa or _NoMfa()")) == [1]
    assert _default_swaps(ast.parse("self.mfa = _NoMfa() if mfa is None else mfa")) == []


def test_the_decision_engine_loads_no_io_library() -> None:
    """Importing the decision engine (and through it the policy, the identity and the claim
    reader) loads neither the HTTP client nor a database or Redis driver."""
    code = (
        "import sys, auth_service.forward_auth.decision as _; "
        "print(sorted(m for m in ('httpx', 'redis', 'asyncpg') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
