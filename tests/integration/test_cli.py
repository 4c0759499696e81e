"""The `auth-service` subcommands as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "AUTH_ENV_FILE": "/nonexistent", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "auth_service", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_policy_check_accepts_the_example_policy() -> None:
    """A valid file exits 0."""
    proc = run("policy", "check", str(ROOT / "deploy" / "policy.toml"))
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout


def test_policy_check_reports_every_error_with_rule_and_line(tmp_path: Path) -> None:
    """Two broken rules give two lines naming each rule and its line; exit 1."""
    bad = tmp_path / "policy.toml"
    bad.write_text(
        '[[rules]]\nname = "a"\npaths = ["/x"]\nrequire_role = ["r"]\n\n'
        '[[rules]]\nname = "b"\npaths = ["/y"]\nallow = "everyone"\n'
    )
    proc = run("policy", "check", str(bad))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2
    assert "rule 'a'" in lines[0] and ":4:" in lines[0]
    assert "rule 'b'" in lines[1] and ":9:" in lines[1]


async def test_keys_rotate_adds_a_pending_key(base_env: dict[str, str]) -> None:
    """`keys rotate` creates a new signing key that activates after the overlap."""
    conn = await asyncpg.connect(base_env["AUTH_DATABASE_URL"])
    before = await conn.fetchval("SELECT count(*) FROM signing_keys")
    proc = run("keys", "rotate", "--overlap", "30", env=base_env)
    assert proc.returncode == 0, proc.stderr
    rows = await conn.fetch(
        "SELECT kid, activated_at > now() AS pending FROM signing_keys ORDER BY activated_at DESC"
    )
    await conn.close()
    assert len(rows) >= before + 1
    assert rows[0]["pending"] is True
    assert rows[0]["kid"] in proc.stdout
