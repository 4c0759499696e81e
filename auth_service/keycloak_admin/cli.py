"""``auth-service keycloak plan|apply|check|export`` (CONTRACT §8).

Admin credentials come from the environment only (``KEYCLOAK_URL`` and either
``KEYCLOAK_ADMIN_USER``/``KEYCLOAK_ADMIN_PASSWORD`` or
``KEYCLOAK_ADMIN_CLIENT_ID``/``KEYCLOAK_ADMIN_CLIENT_SECRET``; secrets also as ``<NAME>_FILE``).
The service's ``AUTH_*`` settings are not needed. Exit codes: 0 done / in sync, 1 drift
(``check``), 2 error, each error one line.
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

from .loader import DesiredStateError, load_desired_state
from .model import DesiredState
from .reconcile import MissingObjectError, Plan, Step, build_plan
from .representation import export_realm

__all__ = ("DEFAULT_FILE", "keycloak_group")

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "keycloak" / "acme.toml"
"""The desired state shipped in ``keycloak/`` (URL placeholders default to development)."""
_SYMBOL = {"create": "+", "update": "~", "delete": "-", "unchanged": "="}


class AdminError(Exception):
    """A configuration problem: one line for the operator."""


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


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


def load(file: Path, *, allow_seed_users: bool, env: Mapping[str, str] | None) -> DesiredState:
    """Load ``file``; exit 2 printing every error with its location."""
    try:
        state = load_desired_state(file, env)
    except DesiredStateError as exc:
        for line in exc.errors:
            click.echo(f"error: {line}", err=True)
        sys.exit(2)
    if state.users and not allow_seed_users:
        _fail(f"{file} declares seed users; pass --allow-seed-users (development only)")
    return state


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


def _execute(state: DesiredState, **options: Any) -> NoReturn:
    try:
        code = asyncio.run(_session(state, **options))
    except AdminError as exc:
        _fail(str(exc))
    except KeycloakError as exc:
        _fail(_describe(exc))
    except MissingObjectError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        click.echo("interrupted: run apply again to finish (every step is idempotent)", err=True)
        sys.exit(130)
    sys.exit(code)


_file = click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_FILE,
    show_default=True,
    help="desired-state file (TOML; `base = ...` overlays another)",
)
_seed = click.option("--allow-seed-users", is_flag=True, help="accept the file's seed users")
_prune = click.option("--prune", is_flag=True, help="delete objects the file does not declare")
_verbose = click.option("--verbose", "-v", is_flag=True, help="list unchanged objects too")


@click.group("keycloak")
def keycloak_group() -> None:
    """Reconcile a Keycloak realm with a declarative file (plan, apply, check, export)."""


@keycloak_group.command("plan")
@_file
@_seed
@_prune
@_verbose
def plan_command(file: Path, allow_seed_users: bool, prune: bool, verbose: bool) -> None:
    """Show what apply would change; changes nothing."""
    state = load(file, allow_seed_users=allow_seed_users, env=os.environ)
    _execute(
        state,
        mode="plan",
        prune=prune,
        rotate=frozenset(),
        verbose=verbose,
        secret_client="",
        write_secret=None,
        print_secret=False,
    )


@keycloak_group.command("check")
@_file
@_seed
@click.option("--prune", is_flag=True, help="objects the file does not declare count as drift")
@_verbose
def check_command(file: Path, allow_seed_users: bool, prune: bool, verbose: bool) -> None:
    """Exit 0 when the realm matches the file, 1 when it drifted (the plan is printed)."""
    state = load(file, allow_seed_users=allow_seed_users, env=os.environ)
    _execute(
        state,
        mode="check",
        prune=prune,
        rotate=frozenset(),
        verbose=verbose,
        secret_client="",
        write_secret=None,
        print_secret=False,
    )


@keycloak_group.command("apply")
@_file
@_seed
@_prune
@_verbose
@click.option(
    "--write-client-secret",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="write the secret of --secret-client to this file (mode 0600), for"
    " AUTH_OIDC_CLIENT_SECRET_FILE",
)
@click.option("--print-client-secret", is_flag=True, help="print the secret of --secret-client")
@click.option("--secret-client", default="auth-service", show_default=True)
@click.option(
    "--rotate-secret", "rotate", multiple=True, help="generate a new secret for this client id"
)
def apply_command(
    file: Path,
    allow_seed_users: bool,
    prune: bool,
    verbose: bool,
    write_client_secret: Path | None,
    print_client_secret: bool,
    secret_client: str,
    rotate: tuple[str, ...],
) -> None:
    """Make the realm match the file (idempotent; safe to rerun after an interruption)."""
    state = load(file, allow_seed_users=allow_seed_users, env=os.environ)
    for client_id in rotate:
        client = state.client(client_id)
        if client is None or client.kind != "confidential":
            _fail(f"--rotate-secret {client_id}: not a confidential client of the file")
        if client.secret is not None:
            _fail(f"--rotate-secret {client_id}: the file fixes its secret; change it there")
    _execute(
        state,
        mode="apply",
        prune=prune,
        rotate=frozenset(rotate),
        verbose=verbose,
        secret_client=secret_client,
        write_secret=write_client_secret,
        print_secret=print_client_secret,
    )


@keycloak_group.command("export")
@_file
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="write here instead of standard output",
)
def export_command(file: Path, output: Path | None) -> None:
    """Print the realm import JSON (placeholders kept for Keycloak's --import-realm)."""
    state = load(file, allow_seed_users=True, env=None)
    if state.client_scopes:
        names = ", ".join(s.name for s in state.client_scopes)
        click.echo(
            f"note: client scopes ({names}) are not in the import (a clientScopes array would"
            " stop Keycloak from creating its built-in scopes); `apply` creates them",
            err=True,
        )
    text = export_json(state)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


def export_json(state: DesiredState) -> str:
    """The realm import JSON text, as committed in ``keycloak/realm-acme.json``."""
    return json.dumps(export_realm(state), indent=2, ensure_ascii=False) + "\n"
