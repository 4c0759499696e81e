"""``auth-service keycloak plan|apply|check|export`` (CONTRACT §8).

Admin credentials come from the environment only (``KEYCLOAK_URL`` and either
``KEYCLOAK_ADMIN_USER``/``KEYCLOAK_ADMIN_PASSWORD`` or
``KEYCLOAK_ADMIN_CLIENT_ID``/``KEYCLOAK_ADMIN_CLIENT_SECRET``; secrets also as ``<NAME>_FILE``).
The service's ``AUTH_*`` settings are not needed. Exit codes: 0 done / in sync, 1 drift
(``check``), 2 error, each error one line.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import click

from .loader import DesiredStateError, load_desired_state
from .model import DesiredState
from .representation import export_realm

__all__ = ("DEFAULT_FILE", "export_json", "fail", "keycloak_group", "load")

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "keycloak" / "acme-dev.toml"
"""The development realm shipped in ``keycloak/`` (CONTRACT §8: with only the admin variables
set, ``apply`` configures a fresh Keycloak for ``make up``): the base file plus fixed dev
secrets and seed users. Any other Keycloak gets ``--file keycloak/acme.toml`` (or its own)."""


def fail(message: str) -> NoReturn:
    """Print one error line and exit 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def load(file: Path, *, allow_seed_users: bool, env: Mapping[str, str] | None) -> DesiredState:
    """Load ``file``; exit 2 printing every error with its location."""
    try:
        state = load_desired_state(file, env)
    except DesiredStateError as exc:
        for line in exc.errors:
            click.echo(f"error: {line}", err=True)
        sys.exit(2)
    if state.users and not allow_seed_users:
        if file.resolve() != DEFAULT_FILE:
            fail(f"{file} declares seed users; pass --allow-seed-users (development only)")
        click.echo(
            f"note: no --file: using the development realm {file} (seed users, fixed dev"
            " secrets); pass --file keycloak/acme.toml for any other Keycloak",
            err=True,
        )
    return state


def _execute(state: DesiredState, **options: Any) -> NoReturn:
    from .session import execute  # python-keycloak and rich only for the commands that use them

    execute(state, **options)


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
            fail(f"--rotate-secret {client_id}: not a confidential client of the file")
        if client.secret is not None:
            fail(f"--rotate-secret {client_id}: the file fixes its secret; change it there")
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
