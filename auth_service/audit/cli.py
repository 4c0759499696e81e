"""``auth-service audit verify``: walk every hash chain and report the first break of each.

Exit status 0 when every chain is intact, 1 when one is broken (the line names
the event where the break shows), 2 for a configuration problem. The walk
streams rows ordered by ``(chain_id, seq)`` in one read-only transaction, so
it runs in constant memory on a table of any size.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg
import click

from auth_service.audit.chain import AuditRecord, ChainReport, verify_records
from auth_service.audit.store import iter_chain_records

__all__ = ("audit_group", "verify", "verify_command")


async def verify(dsn: str) -> tuple[int, list[str]]:
    """Verify every chain in the database at ``dsn``; returns ``(exit status, report lines)``."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            records: list[AuditRecord] = []
            reports: list[ChainReport] = []
            chain: str | None = None
            async for record in iter_chain_records(conn):
                if record.chain_id != chain and records:
                    reports.extend(verify_records(records))
                    records = []
                chain = record.chain_id
                records.append(record)
            reports.extend(verify_records(records))
    finally:
        await conn.close()
    broken = [r for r in reports if r.broken is not None]
    lines = [r.describe() for r in reports]
    events = sum(r.events for r in reports)
    if broken:
        lines.append(f"audit chain BROKEN: {len(broken)} of {len(reports)} chains, {events} events")
        return 1, lines
    lines.append(f"audit chain intact: {len(reports)} chains, {events} events")
    return 0, lines


@click.command("verify")
@click.option("--dsn", default=None, help="PostgreSQL DSN (default AUTH_DATABASE_URL).")
@click.option("--quiet", is_flag=True, help="Print only broken chains and the summary.")
def verify_command(dsn: str | None, quiet: bool) -> None:
    """Check the audit hash chains; exit 1 naming the first broken event of each chain."""
    if dsn is None:
        from auth_service.config import SettingsError, load_settings

        try:
            dsn = load_settings().database_url
        except SettingsError as exc:
            for line in exc.problems:
                click.echo(f"configuration error: {line}", err=True)
            sys.exit(2)
    try:
        code, lines = asyncio.run(verify(dsn))
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
