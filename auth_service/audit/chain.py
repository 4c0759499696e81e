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

import datetime as dt
import hashlib
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

__all__ = (
    "GENESIS",
    "AuditRecord",
    "ChainBreak",
    "ChainReport",
    "EventData",
    "EventFields",
    "When",
    "canonical_bytes",
    "chain_hash",
    "seal",
    "verify_records",
)

GENESIS = bytes(32)
"""``prev_hash`` of the first event of every chain."""

_encoder = msgspec.json.Encoder(order="sorted")


When = TypeVar("When", int, dt.datetime)
"""How `EventData.occurred_at` is given: µs since the epoch, or a datetime."""


class EventData(msgspec.Struct, Generic[When], frozen=True, gc=False):
    """The fields of one audit event before it is sealed into a chain.

    `EventFields` (``occurred_at`` in µs) is what is hashed, spooled and
    stored; `auth_service.audit.store.AuditEventOut` (a datetime) is what the
    admin API returns. The declaration order is the order of the hashed
    encoding (`canonical_bytes`) and of the spooled and stored record
    (`AuditRecord`): reordering the fields would break every existing chain.
    """

    id: str
    """Event id (a UUID)."""
    occurred_at: When
    """When it happened."""
    type: str
    """What happened (`auth_service.audit.events.AuditEventType`)."""
    outcome: str
    """``success``/``failure`` for attempts, ``denied``/``allowed`` for decisions."""
    actor_sub: str | None
    """``sub`` of who acted (the caller)."""
    subject_sub: str | None
    """``sub`` of whom the event concerns."""
    client_id: str | None
    """OAuth client involved."""
    source_ip: str | None
    """Normalised address of the caller."""
    user_agent: str | None
    """The caller's ``User-Agent``."""
    request_id: str | None
    """Id of the request that emitted the event."""
    trace_id: str | None
    """OpenTelemetry trace id (32 hex digits)."""
    reason: str | None
    """Machine-readable reason (``token_expired``, ``missing_role``, ...)."""
    details: dict[str, Any]
    """Event-specific data, already scrubbed (`auth_service.audit.events.scrub`)."""
    count: int
    """Events this one stands for (above 1 for an aggregation summary)."""


class EventFields(EventData[int], frozen=True, gc=False):
    """An unsealed event as emitted, hashed and stored (``occurred_at`` in µs since the epoch)."""


_event_values: Callable[[EventFields], tuple[Any, ...]] = operator.attrgetter(
    *EventFields.__struct_fields__
)
"""The values of an `EventFields` (or of the event part of an `AuditRecord`), in order."""


class AuditRecord(EventFields, array_like=True, frozen=True, gc=False):
    """One sealed audit event, as spooled and as stored: the `EventFields` and its link."""

    chain_id: str
    seq: int
    prev_hash: bytes
    hash: bytes


def canonical_bytes(fields: EventFields, *, chain_id: str, seq: int) -> bytes:
    """The bytes an event's hash covers: a JSON array in a fixed field order, keys sorted.

    The array holds the `EventFields` in their declaration order, then
    ``chain_id`` and ``seq``. ``details`` must already be normalised
    (`auth_service.audit.events.scrub`): strings, 53-bit integers, booleans,
    null, lists and objects only, so the encoding survives a round trip through
    ``jsonb`` unchanged.
    """
    return _encoder.encode([*_event_values(fields), chain_id, seq])


def chain_hash(prev_hash: bytes, canonical: bytes) -> bytes:
    """``sha256(prev_hash || canonical)``."""
    return hashlib.sha256(prev_hash + canonical).digest()


def seal(fields: EventFields, *, chain_id: str, seq: int, prev_hash: bytes) -> AuditRecord:
    """Build the record for the next link of a chain."""
    canonical = canonical_bytes(fields, chain_id=chain_id, seq=seq)
    link = (chain_id, seq, prev_hash, chain_hash(prev_hash, canonical))
    return AuditRecord(*_event_values(fields) + link)


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
    if chain_hash(r.prev_hash, canonical_bytes(r, chain_id=r.chain_id, seq=r.seq)) != r.hash:
        return "content does not match its hash (modified)"
    return None
