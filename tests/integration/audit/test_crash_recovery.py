"""``kill -9`` while emitting: every event that was acknowledged lands exactly once."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import asyncpg

from auth_service.audit.cli import verify
from tests.support.audit import KEY_1
from tests.support.processes import ROOT, wait_until

TOTAL = 10_000


def _emitter(dsn: str, spool_root: Path, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.audit.emitter", dsn, str(spool_root), str(count)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_kill_9_mid_run_then_restart_loses_and_duplicates_nothing(
    fresh_db: str, spool_root: Path
) -> None:
    """SIGKILL while 10,000 events are being emitted; a restarted writer replays the spool.

    Every id the dead process printed (it prints after `emit` returned, as a
    handler would respond) is in the table exactly once, and the chain verifies.
    """
    proc = _emitter(fresh_db, spool_root, TOTAL)
    assert proc.stdout is not None
    acknowledged: list[str] = []
    while len(acknowledged) < TOTAL // 2:
        line = proc.stdout.readline()
        assert line, f"emitter ended early: {proc.stderr.read() if proc.stderr else ''}"
        acknowledged.append(line.strip())
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=30)
    # Only whole lines were acknowledged: SIGKILL can cut the last one mid-write.
    whole = rest.split("\n")[:-1]
    acknowledged += [x for x in whole if x and not x.startswith(("IDLE", "BUSY"))]
    assert proc.returncode == -signal.SIGKILL
    assert "None" not in acknowledged

    conn = await asyncpg.connect(fresh_db)
    try:
        before = await conn.fetchval("SELECT count(*) FROM audit_events")
        replay = _emitter(fresh_db, spool_root, 0)
        out, err = replay.communicate(timeout=120)
        assert replay.returncode == 0, err
        assert out.startswith("IDLE"), out
        rows = await conn.fetch(
            "SELECT id::text AS id FROM audit_events WHERE id = ANY($1::uuid[])", acknowledged
        )
        counts = Counter(r["id"] for r in rows)
        missing = set(acknowledged) - set(counts)
        assert not missing, f"{len(missing)} acknowledged events lost"
        assert max(counts.values()) == 1
        total = await conn.fetchval("SELECT count(*) FROM audit_events")
        dupes = await conn.fetchval(
            "SELECT count(*) FROM (SELECT id FROM audit_events GROUP BY id HAVING count(*) > 1) d"
        )
        assert dupes == 0
        print(f"acknowledged={len(acknowledged)} before_replay={before} total={total}", out)
        assert total >= len(acknowledged)
    finally:
        await conn.close()
    code, lines = await verify(fresh_db, [KEY_1])
    assert code == 0, lines
    wait_until(lambda: not any(spool_root.rglob("seg-*.log")), 10, "the spool to be emptied")
