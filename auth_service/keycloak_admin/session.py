"""Running ``plan``/``apply``/``check`` against Keycloak: admin login from the environment,
the plan's rendering, applying its steps with progress, and one-line errors.

Imported only when one of those commands runs, so other ``auth-service`` commands do not load
python-keycloak and rich.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NoReturn

import click
from keycloak import (
    KeycloakAdmin,
    KeycloakAuthenticationError,
    KeycloakConnectionError,
    KeycloakError,
    KeycloakOpenIDConnection,
)
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from .cli import fail
from .model import DesiredState
from .reconcile import MissingObjectError, Plan, Step, build_plan

__all__ = ("AdminError", "admin_from_env", "execute", "render")

_SYMBOL = {"create": "+", "update": "~", "delete": "-", "unchanged": "="}


class AdminError(Exception):
    """A configuration problem: one line for the operator."""


def _secret(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    path = env.get(f"{name}_FILE")
    if (value is None or value == "") and path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise AdminError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    return value or None


def admin_from_env(env: Mapping[str, str], realm: str) -> KeycloakAdmin:
    """A python-keycloak admin client for ``realm``, logged in to ``master`` from ``env``."""
    url = env.get("KEYCLOAK_URL", "")
    if url == "":
        raise AdminError(
            "KEYCLOAK_URL is not set (the Keycloak server root, e.g. http://keycloak:8080)"
        )
    user, password = env.get("KEYCLOAK_ADMIN_USER"), _secret(env, "KEYCLOAK_ADMIN_PASSWORD")
    client_id = env.get("KEYCLOAK_ADMIN_CLIENT_ID")
    client_secret = _secret(env, "KEYCLOAK_ADMIN_CLIENT_SECRET")
    common: dict[str, Any] = {
        "server_url": url.rstrip("/") + "/",
        "realm_name": realm,
        "user_realm_name": "master",
        "timeout": 30,
    }
    if user and password is not None:
        connection = KeycloakOpenIDConnection(username=user, password=password, **common)
    elif client_id and client_secret is not None:
        connection = KeycloakOpenIDConnection(
            client_id=client_id, client_secret_key=client_secret, **common
        )
    else:
        raise AdminError(
            "set KEYCLOAK_ADMIN_USER and KEYCLOAK_ADMIN_PASSWORD, or KEYCLOAK_ADMIN_CLIENT_ID"
            " and KEYCLOAK_ADMIN_CLIENT_SECRET"
        )
    return KeycloakAdmin(connection=connection)


def _describe(exc: KeycloakError) -> str:
    if isinstance(exc, KeycloakAuthenticationError):
        return "Keycloak refused the admin credentials (KEYCLOAK_ADMIN_*)"
    if isinstance(exc, KeycloakConnectionError):
        return f"cannot reach Keycloak: {exc.error_message!s}"
    body = exc.response_body
    detail = ""
    if isinstance(body, bytes | str):
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                detail = str(parsed.get("errorMessage") or parsed.get("error") or "")
        except ValueError:
            detail = ""
    return f"Keycloak answered {exc.response_code}: {detail or type(exc).__name__}"


def render(plan: Plan, *, verbose: bool = False) -> list[str]:
    """The readable plan: one line per object, field-level changes below it."""
    lines: list[str] = []
    for step in plan.steps:
        if step.action == "unchanged" and not verbose:
            continue
        lines.append(f"{_SYMBOL[step.action]} {step.action} {step.kind} {step.name}")
        for change in step.changes:
            if change.secret:
                lines.append(f"    ~ {change.path}: (secret, changes)")
            elif change.old is None:
                lines.append(f"    + {change.path}: {change.new!r}")
            else:
                lines.append(f"    ~ {change.path}: {change.old!r} -> {change.new!r}")
    if not plan.pending:
        lines.append(f"No changes: the realm matches the file ({plan.count('unchanged')} objects).")
    else:
        lines.append(
            f"Plan: {plan.count('create')} to create, {plan.count('update')} to update,"
            f" {plan.count('delete')} to delete, {plan.count('unchanged')} unchanged."
        )
    return lines


async def _run_steps(steps: list[Step]) -> None:
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal or len(steps) < 10,
    ) as progress:
        task = progress.add_task("applying", total=len(steps))
        for step in steps:
            progress.update(task, description=f"{step.action} {step.kind} {step.name}")
            if step.run is not None:
                await step.run()
            progress.advance(task)


def _write_secret(path: Path, value: str) -> None:
    """Write ``value`` readable by its owner only (also when the file existed before)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
    except OSError as exc:
        raise AdminError(f"--write-client-secret: cannot write {path}: {exc.strerror}") from None


async def _session(
    state: DesiredState,
    *,
    mode: Literal["plan", "apply", "check"],
    prune: bool,
    rotate: frozenset[str],
    verbose: bool,
    secret_client: str,
    write_secret: Path | None,
    print_secret: bool,
) -> int:
    admin = admin_from_env(os.environ, state.realm.name)
    try:
        console = Console(stderr=True)
        if console.is_terminal:
            with console.status("reading the live realm"):
                plan = await build_plan(admin, state, prune=prune, rotate=rotate)
        else:
            plan = await build_plan(admin, state, prune=prune, rotate=rotate)
        for line in render(plan, verbose=verbose):
            click.echo(line)
        if mode == "check":
            return 1 if plan.pending else 0
        if mode == "plan":
            return 0
        await _run_steps(plan.pending)
        if plan.pending:
            click.echo(f"Applied {len(plan.pending)} change(s).")
        if write_secret is not None or print_secret:
            uuid = await admin.a_get_client_id(secret_client)
            if uuid is None:
                raise AdminError(f"no client {secret_client} to read the secret of")
            value = str((await admin.a_get_client_secrets(uuid)).get("value") or "")
            if value == "":
                raise AdminError(f"client {secret_client} has no secret (public client?)")
            if write_secret is not None:
                _write_secret(write_secret, value)
                click.echo(f"Wrote the secret of client {secret_client} to {write_secret}.")
            if print_secret:
                click.echo(value)
        return 0
    finally:
        await admin.connection.aclose()


def execute(state: DesiredState, **options: Any) -> NoReturn:
    """Run a mode against Keycloak and exit with its code (2 with one line on errors)."""
    try:
        code = asyncio.run(_session(state, **options))
    except AdminError as exc:
        fail(str(exc))
    except KeycloakError as exc:
        fail(_describe(exc))
    except MissingObjectError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        click.echo("interrupted: run apply again to finish (every step is idempotent)", err=True)
        sys.exit(130)
    sys.exit(code)
