"""The ``auth-service`` command line.

Settings problems exit with status 2 and one line per problem, never a
traceback; a command's own failure exits 1.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from auth_service.audit.cli import audit_group
from auth_service.config import Settings, SettingsError, load_settings
from auth_service.devstack import dev_command
from auth_service.keycloak_admin.cli import keycloak_group

__all__ = ("main",)

F = TypeVar("F", bound=Callable[..., Any])


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        for line in exc.problems:
            click.echo(f"configuration error: {line}", err=True)
        sys.exit(2)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


@click.group()
def main() -> None:
    """Authentication and identity service behind an API gateway."""


@main.command()
@click.option("--host", default=None, help="Interface to bind (default AUTH_HOST).")
@click.option("--port", type=int, default=None, help="Port (default AUTH_PORT).")
@click.option("--workers", type=int, default=None, help="Worker processes (default AUTH_WORKERS).")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Run the HTTP service on granian, one process per worker (`auth_service.server`).

    SIGTERM/SIGINT shut down gracefully (in-flight requests finish, the audit
    queue is flushed); SIGHUP reloads the policy in every worker without
    restarting them.
    """
    from auth_service import server
    from auth_service.observability.logging import configure_logging

    settings = _settings_or_exit()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    server.run(
        host or settings.host,
        settings.port if port is None else port,
        workers or settings.workers,
        settings.log_level,
        batch_scheduling=settings.batch_scheduling,
        metrics_dir=settings.metrics_dir,
    )


@main.command()
def migrate() -> None:
    """Bring the PostgreSQL schema up to date (safe to run concurrently and repeatedly).

    Connects with AUTH_MIGRATE_DATABASE_URL (the schema owner), else
    AUTH_DATABASE_URL. Owning the database is enough: the least-privilege
    runtime role is created and granted when this role may, otherwise the SQL a
    DBA runs is printed and the exit status is still 0.
    """
    from auth_service.migrations import MigrationError, run_migrations

    settings = _settings_or_exit()
    owner = settings.migrate_database_url
    dsn = settings.database_url if owner is None else owner
    try:
        result = asyncio.run(run_migrations(dsn, runtime_dsn=settings.database_url))
    except MigrationError as exc:
        _fail(f"migrate: {exc}")
    except (OSError, Exception) as exc:  # connection refused, auth failure, SQL error
        _fail(f"migrate: cannot migrate: {exc.__class__.__name__}: {exc}")
    for m in result.applied:
        click.echo(f"applied {m.version:04d}_{m.name}")
    if not result.applied:
        click.echo("schema is up to date")
    for line in result.notices:
        click.echo(line)


@main.group()
def keys() -> None:
    """Signing keys of X-Auth-Assertion."""


@keys.command("rotate")
@click.option(
    "--overlap",
    type=click.FloatRange(min=0),
    default=75.0,
    show_default=True,
    help="Seconds the new key is published before it signs.",
)
def rotate(overlap: float) -> None:
    """Create the next signing key; every worker switches to it after OVERLAP seconds."""
    from auth_service.tokens.keys_cli import rotate_keys

    settings = _settings_or_exit()
    try:
        rotate_keys(settings, overlap)
    except Exception as exc:  # connection refused, SQL error
        _fail(f"keys rotate: {exc.__class__.__name__}: {exc}")


@main.group()
def policy() -> None:
    """Access policy files."""


@policy.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def policy_check(file: str) -> None:
    """Validate a policy file: exit 0 when valid, else print every error and exit 1."""
    from auth_service.policy import check_policy_file

    code, lines = check_policy_file(file)
    for line in lines:
        click.echo(line, err=code != 0)
    sys.exit(code)


main.add_command(audit_group)
main.add_command(dev_command)
main.add_command(keycloak_group)


if __name__ == "__main__":  # pragma: no cover
    main()
