"""``auth-service audit verify``: walk every keyed chain and report the first break of each.

The chain's MAC keys are derived from ``AUTH_SECRET_KEYS`` (every key an event
may have been sealed with must be listed; the database holds none of them).
``--checkpoints FILE`` adds the checkpoints the writers published outside the
database (JSON log lines, or the JSON of ``GET /admin/audit-checkpoints``), so
that removed newest events are found too.

Exit status 0 when every chain is intact, 1 when one is broken (the line names
the event where the break shows, or the chain and the missing seq range), 2 for
a configuration problem. The walk streams rows ordered by ``(chain_id, seq)``
in one read-only transaction, holding one chain in memory at a time.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import NoReturn

import asyncpg
import click

from auth_service.audit.chain import (
    AuditRecord,
    ChainKeys,
    ChainReport,
    Checkpoints,
    missing_chains,
    verify_records,
)
from auth_service.audit.checkpoints import InvalidCheckpoints, by_chain, parse_checkpoints
from auth_service.audit.store import iter_chain_records
from auth_service.config import SecretKey

__all__ = ("audit_group", "verify", "verify_command")


async def verify(
    dsn: str,
    keys: Sequence[SecretKey],
    *,
    accept_unkeyed: Collection[str] = (),
    checkpoints: Checkpoints | None = None,
) -> tuple[int, list[str]]:
    """Verify every chain in the database at ``dsn``; returns ``(exit status, report lines)``."""
    chain_keys = ChainKeys(keys)
    accepted = frozenset(accept_unkeyed)

    def check(records: list[AuditRecord]) -> list[ChainReport]:
        return list(
            verify_records(records, chain_keys, accept_unkeyed=accepted, checkpoints=checkpoints)
        )

    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            records: list[AuditRecord] = []
            reports: list[ChainReport] = []
            chain: str | None = None
            async for record in iter_chain_records(conn):
                if record.chain_id != chain and records:
                    reports.extend(check(records))
                    records = []
                chain = record.chain_id
                records.append(record)
            reports.extend(check(records))
    finally:
        await conn.close()
    gone = missing_chains({r.chain_id for r in reports}, checkpoints or {})
    broken = [r for r in reports if r.broken is not None]
    lines = [r.describe() for r in reports] + gone
    events = sum(r.events for r in reports)
    chains = len(reports) + len(gone)
    if broken or gone:
        bad = len(broken) + len(gone)
        lines.append(f"audit chain BROKEN: {bad} of {chains} chains, {events} events")
        return 1, lines
    checked = f", checked against {len(checkpoints)} checkpointed chains" if checkpoints else ""
    lines.append(f"audit chain intact: {len(reports)} chains, {events} events{checked}")
    return 0, lines


def _fail(lines: Sequence[str]) -> NoReturn:
    for line in lines:
        click.echo(f"configuration error: {line}", err=True)
    sys.exit(2)


@click.command("verify")
@click.option("--dsn", default=None, help="PostgreSQL DSN (default AUTH_DATABASE_URL).")
@click.option("--quiet", is_flag=True, help="Print only broken chains and the summary.")
@click.option(
    "--checkpoints",
    "checkpoints_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Published checkpoints: JSON log lines (audit_checkpoint) or the JSON of "
    "GET /admin/audit-checkpoints.",
)
@click.option(
    "--accept-unkeyed",
    multiple=True,
    metavar="CHAIN_ID",
    help="Accept this chain of the old unkeyed scheme (written before migration 0004); repeatable.",
)
def verify_command(
    dsn: str | None, quiet: bool, checkpoints_file: Path | None, accept_unkeyed: tuple[str, ...]
) -> None:
    """Check the keyed audit chains (keys from AUTH_SECRET_KEYS); exit 1 naming the first
    broken event of each chain."""
    from auth_service.config import SettingsError, load_secret_keys, load_settings

    try:
        if dsn is None:
            settings = load_settings()
            dsn, keys = settings.database_url, settings.secret_keys
        else:
            keys = load_secret_keys()
    except SettingsError as exc:
        _fail(exc.problems)
    checkpoints: Checkpoints | None = None
    if checkpoints_file is not None:
        try:
            checkpoints = by_chain(parse_checkpoints(checkpoints_file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, InvalidCheckpoints) as exc:
            _fail([f"--checkpoints {checkpoints_file}: {exc}"])
    try:
        code, lines = asyncio.run(
            verify(dsn, keys, accept_unkeyed=accept_unkeyed, checkpoints=checkpoints)
        )
    except (OSError, asyncpg.PostgresError) as exc:
        click.echo(f"audit verify: cannot read the audit table: {exc}", err=True)
        sys.exit(1)
    for line in lines:
        if not quiet or not line.startswith("ok "):
            click.echo(line)
    sys.exit(code)


@click.group("audit")
def audit_group() -> None:
    """Audit trail tools."""


audit_group.add_command(verify_command)

if __name__ == "__main__":  # pragma: no cover
    audit_group()
