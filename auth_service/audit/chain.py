"""The hash chain: canonical encoding, sealing, and verification.

Design: **one chain per writer**. Every `AuditWriter` (one per worker process
and start) draws a random ``chain_id`` and numbers its events ``seq = 1, 2, ...``;
each event stores ``prev_hash`` and ``hash = sha256(prev_hash || canonical)``,
where ``canonical`` is the JSON encoding of every field except the two hashes
(see `canonical_bytes`) and the first event's ``prev_hash`` is 32 zero bytes.

Why not a single chain serialised in PostgreSQL? A single chain needs each
insert to read the previous hash under a lock: every worker of every instance
would queue on one row, writes would need a round trip per event instead of a
batch, and the chain could not be sealed while PostgreSQL is down, so events in
the local spool would not be tamper-evident yet. Per-writer chains are sealed
in memory at `emit` time (one SHA-256 over ~400 bytes), before the event
reaches the spool: what is replayed after a crash or an outage is already
chained, in order, and concurrent writers never coordinate.

`audit verify` walks each chain by ``seq``: a recomputed hash that differs
(an edited row), a ``prev_hash`` that is not the previous row's ``hash`` (an
edited link) and a missing ``seq`` (a deleted row) are breaks; the first break
of each chain is reported with the id of the event where it shows. A chain
whose lowest ``seq`` is above 1 starts in a dropped partition (retention) and
is reported as such, not as a break. Deleting a chain's *last* events cannot be
detected from the table alone; the structlog mirror of each event is the
independent record for that case.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = (
    "GENESIS",
    "AuditRecord",
    "ChainBreak",
    "ChainReport",
    "canonical_bytes",
    "chain_hash",
    "seal",
    "verify_records",
)

GENESIS = bytes(32)
"""``prev_hash`` of the first event of every chain."""

_encoder = msgspec.json.Encoder(order="sorted")


class AuditRecord(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One sealed audit event, as spooled and as stored (``occurred_at`` in µs since the epoch)."""

    id: str
    occurred_at: int
    type: str
    outcome: str
    actor_sub: str | None
    subject_sub: str | None
    client_id: str | None
    source_ip: str | None
    user_agent: str | None
    request_id: str | None
    trace_id: str | None
    reason: str | None
    details: dict[str, Any]
    count: int
    chain_id: str
    seq: int
    prev_hash: bytes
    hash: bytes


def canonical_bytes(
    id: str,
    occurred_at: int,
    type: str,
    outcome: str,
    actor_sub: str | None,
    subject_sub: str | None,
    client_id: str | None,
    source_ip: str | None,
    user_agent: str | None,
    request_id: str | None,
    trace_id: str | None,
    reason: str | None,
    details: dict[str, Any],
    count: int,
    chain_id: str,
    seq: int,
) -> bytes:
    """The bytes an event's hash covers: a JSON array in a fixed field order, keys sorted.

    ``details`` must already be normalised (`auth_service.audit.events.scrub`):
    strings, 53-bit integers, booleans, null, lists and objects only, so the
    encoding survives a round trip through ``jsonb`` unchanged.
    """
    return _encoder.encode(
        [
            id,
            occurred_at,
            type,
            outcome,
            actor_sub,
            subject_sub,
            client_id,
            source_ip,
            user_agent,
            request_id,
            trace_id,
            reason,
            details,
            count,
            chain_id,
            seq,
        ]
    )


def chain_hash(prev_hash: bytes, canonical: bytes) -> bytes:
    """``sha256(prev_hash || canonical)``."""
    return hashlib.sha256(prev_hash + canonical).digest()


def _canonical_of(r: AuditRecord) -> bytes:
    return canonical_bytes(
        r.id,
        r.occurred_at,
        r.type,
        r.outcome,
        r.actor_sub,
        r.subject_sub,
        r.client_id,
        r.source_ip,
        r.user_agent,
        r.request_id,
        r.trace_id,
        r.reason,
        r.details,
        r.count,
        r.chain_id,
        r.seq,
    )


def seal(
    *,
    id: str,
    occurred_at: int,
    type: str,
    outcome: str,
    actor_sub: str | None,
    subject_sub: str | None,
    client_id: str | None,
    source_ip: str | None,
    user_agent: str | None,
    request_id: str | None,
    trace_id: str | None,
    reason: str | None,
    details: dict[str, Any],
    count: int,
    chain_id: str,
    seq: int,
    prev_hash: bytes,
) -> AuditRecord:
    """Build the record for the next link of a chain."""
    canonical = canonical_bytes(
        id,
        occurred_at,
        type,
        outcome,
        actor_sub,
        subject_sub,
        client_id,
        source_ip,
        user_agent,
        request_id,
        trace_id,
        reason,
        details,
        count,
        chain_id,
        seq,
    )
    return AuditRecord(
        id,
        occurred_at,
        type,
        outcome,
        actor_sub,
        subject_sub,
        client_id,
        source_ip,
        user_agent,
        request_id,
        trace_id,
        reason,
        details,
        count,
        chain_id,
        seq,
        prev_hash,
        chain_hash(prev_hash, canonical),
    )


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first inconsistency found in one chain."""

    chain_id: str
    event_id: str
    seq: int
    problem: str

    def describe(self) -> str:
        """One line naming the event."""
        where = f"event {self.event_id} (seq {self.seq})"
        return f"BROKEN chain {self.chain_id} at {where}: {self.problem}"


@dataclass(slots=True)
class ChainReport:
    """What verification found for one chain."""

    chain_id: str
    first_seq: int = 0
    last_seq: int = 0
    events: int = 0
    broken: ChainBreak | None = None

    def describe(self) -> str:
        """One summary line."""
        if self.broken is not None:
            return self.broken.describe()
        head = "" if self.first_seq == 1 else f" (starts at seq {self.first_seq}: older retired)"
        span = f"seq {self.first_seq}..{self.last_seq}{head}"
        return f"ok chain {self.chain_id}: {self.events} events, {span}"


def verify_records(records: Iterable[AuditRecord]) -> Iterator[ChainReport]:
    """Check records sorted by ``(chain_id, seq)``; yields one report per chain, in order."""
    report: ChainReport | None = None
    prev: AuditRecord | None = None
    for r in records:
        if report is None or r.chain_id != report.chain_id:
            if report is not None:
                yield report
            report = ChainReport(chain_id=r.chain_id, first_seq=r.seq)
            prev = None
        report.events += 1
        report.last_seq = r.seq
        if report.broken is not None:
            continue
        problem = _check(prev, r)
        if problem is not None:
            report.broken = ChainBreak(r.chain_id, r.id, r.seq, problem)
        prev = r
    if report is not None:
        yield report


def _check(prev: AuditRecord | None, r: AuditRecord) -> str | None:
    if prev is None:
        if r.seq == 1 and r.prev_hash != GENESIS:
            return "first event of the chain does not start from the genesis hash"
    elif r.seq == prev.seq:
        return f"duplicate seq {r.seq}"
    elif r.seq != prev.seq + 1:
        missing = r.seq - prev.seq - 1
        return f"{missing} event(s) missing before it (seq {prev.seq + 1}..{r.seq - 1})"
    elif r.prev_hash != prev.hash:
        return "prev_hash does not match the previous event's hash"
    if chain_hash(r.prev_hash, _canonical_of(r)) != r.hash:
        return "content does not match its hash (modified)"
    return None
