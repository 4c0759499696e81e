"""The keyed chain: canonical encoding, sealing, and verification.

Design: **one chain per writer**. Every `AuditWriter` (one per worker process
and start) draws a random ``chain_id`` and numbers its events ``seq = 1, 2, ...``;
each event stores ``prev_hash``, ``key_id`` and
``hash = HMAC-SHA-256(K[key_id], prev_hash || canonical)``, where ``canonical``
is the JSON encoding of every field except the two links, plus ``chain_id``,
``seq`` and ``key_id`` (see `canonical_bytes`), and the first event's
``prev_hash`` is 32 zero bytes. ``K[id]`` is derived with HKDF from the
``AUTH_SECRET_KEYS`` entry ``id`` (`ChainKeys`): the database never holds it, so
the table owner can neither edit an event nor re-seal the chain after an edit
(plain SHA-256, or any other key) without `audit verify` naming the event.
Keys rotate like every other use of ``AUTH_SECRET_KEYS``: the first key seals,
every listed key verifies the events it sealed.

Why not a single chain serialised in PostgreSQL? A single chain needs each
insert to read the previous link under a lock: every worker of every instance
would queue on one row, writes would need a round trip per event instead of a
batch, and the chain could not be sealed while PostgreSQL is down, so events in
the local spool would not be tamper-evident yet. Per-writer chains are sealed
in memory at `emit` time (one HMAC over ~400 bytes), before the event reaches
the spool: what is replayed after a crash or an outage is already chained, in
order, and concurrent writers never coordinate.

`audit verify` walks each chain by ``seq``: a recomputed MAC that differs (an
edited or re-sealed row), a ``prev_hash`` that is not the previous row's link
(an edited link), a missing ``seq`` (a deleted row), a key id the keys do not
hold, and an unkeyed event are breaks; the first break of each chain is
reported with the id of the event where it shows. A chain whose lowest ``seq``
is above 1 starts in a dropped partition (retention) and is reported as such,
not as a break. Deleting a chain's *newest* events cannot be seen in the table
alone: each writer publishes checkpoints (chain id, seq, MAC) outside the
database (`auth_service.audit.checkpoints`), and a chain that no longer
reaches a checkpoint's seq is a break.

Events of the old unkeyed scheme (``key_id`` null, plain SHA-256, written
before migration 0004) cannot be vouched for against the table owner after the
fact. They are a break unless the auditor names their chains
(``audit verify --accept-unkeyed CHAIN``, ids listed by an ``audit verify`` run
before the upgrade); accepted ones are checked with SHA-256 as before.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import operator
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from auth_service.config import SecretKey
from auth_service.crypto import derive_key

__all__ = (
    "GENESIS",
    "AuditRecord",
    "ChainBreak",
    "ChainKeys",
    "ChainReport",
    "Checkpoints",
    "EventData",
    "EventFields",
    "When",
    "canonical_bytes",
    "legacy_hash",
    "missing_chains",
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
    """One sealed audit event, as spooled and as stored: the `EventFields` and its link.

    ``key_id`` names the ``AUTH_SECRET_KEYS`` entry whose derived MAC key sealed
    it; ``None`` marks an event of the old unkeyed scheme (plain SHA-256, before
    migration 0004), which the spool format also decodes to.
    """

    chain_id: str
    seq: int
    prev_hash: bytes
    hash: bytes
    """The link: HMAC-SHA-256 (or SHA-256 for an unkeyed event) over ``prev_hash`` and the event."""
    key_id: str | None = None


class ChainKeys:
    """The chain's MAC keys, one per ``AUTH_SECRET_KEYS`` entry, derived with HKDF.

    The first key seals new events; every configured key verifies, chosen by
    the event's ``key_id``. Nothing derived from them is ever stored.
    """

    __slots__ = ("_keys", "_primary")

    def __init__(self, keys: Sequence[SecretKey]) -> None:
        if not keys:
            raise ValueError("the audit chain needs at least one key")
        self._keys = {k.id: derive_key(k, _PURPOSE) for k in keys}
        self._primary = keys[0].id

    def __repr__(self) -> str:
        return f"ChainKeys(key_ids={list(self._keys)!r})"

    @property
    def primary_id(self) -> str:
        """Id of the key new events are sealed with."""
        return self._primary

    @property
    def ids(self) -> tuple[str, ...]:
        """Ids of every key that verifies."""
        return tuple(self._keys)

    def mac(self, key_id: str, prev_hash: bytes, canonical: bytes) -> bytes | None:
        """``HMAC-SHA-256(key, prev_hash || canonical)``; ``None`` for an unknown key id."""
        key = self._keys.get(key_id)
        if key is None:
            return None
        return hmac.digest(key, prev_hash + canonical, "sha256")


_PURPOSE = "audit-chain-mac-v1"


def canonical_bytes(
    fields: EventFields, *, chain_id: str, seq: int, key_id: str | None = None
) -> bytes:
    """The bytes an event's MAC covers: a JSON array in a fixed field order, keys sorted.

    The array holds the `EventFields` in their declaration order, then
    ``chain_id``, ``seq`` and (keyed events) ``key_id``. ``details`` must already
    be normalised (`auth_service.audit.events.scrub`): strings, 53-bit integers,
    booleans, null, lists and objects only, so the encoding survives a round trip
    through ``jsonb`` unchanged.
    """
    if key_id is None:
        return _encoder.encode([*_event_values(fields), chain_id, seq])
    return _encoder.encode([*_event_values(fields), chain_id, seq, key_id])


def legacy_hash(prev_hash: bytes, canonical: bytes) -> bytes:
    """``sha256(prev_hash || canonical)``: the link of the old, unkeyed scheme."""
    return hashlib.sha256(prev_hash + canonical).digest()


def seal(
    fields: EventFields, *, chain_id: str, seq: int, prev_hash: bytes, keys: ChainKeys
) -> AuditRecord:
    """Build the record for the next link of a chain, MAC'd under the first key."""
    key_id = keys.primary_id
    canonical = canonical_bytes(fields, chain_id=chain_id, seq=seq, key_id=key_id)
    mac = keys.mac(key_id, prev_hash, canonical)
    assert mac is not None
    link = (chain_id, seq, prev_hash, mac, key_id)
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
    unkeyed: bool = False
    """An accepted chain of the old unkeyed scheme."""
    last_id: str = ""
    checkpoint_seq: int = 0
    """Highest seq a checkpoint vouches for (0: none given)."""

    def describe(self) -> str:
        """One summary line."""
        if self.broken is not None:
            return self.broken.describe()
        head = "" if self.first_seq == 1 else f" (starts at seq {self.first_seq}: older retired)"
        span = f"seq {self.first_seq}..{self.last_seq}{head}"
        kind = " (unkeyed, accepted: not proof against the table owner)" if self.unkeyed else ""
        cp = f", checkpoint seq {self.checkpoint_seq} matches" if self.checkpoint_seq else ""
        return f"ok chain {self.chain_id}: {self.events} events, {span}{kind}{cp}"


Checkpoints = Mapping[str, Mapping[int, bytes]]
"""chain id → seq → the MAC a published checkpoint recorded for that event."""


def verify_records(
    records: Iterable[AuditRecord],
    keys: ChainKeys,
    *,
    accept_unkeyed: Collection[str] = (),
    checkpoints: Checkpoints | None = None,
) -> Iterator[ChainReport]:
    """Check records sorted by ``(chain_id, seq)``; yields one report per chain, in order.

    Args:
        keys: the MAC keys (`ChainKeys` of ``AUTH_SECRET_KEYS``).
        accept_unkeyed: ids of chains of the old unkeyed scheme the auditor
            accepts (checked with plain SHA-256); an unkeyed event of any other
            chain is a break: it is what re-sealing without the key looks like.
        checkpoints: published checkpoints; an event they name must carry the
            MAC they recorded, and a chain must reach their highest seq
            (otherwise its newest events were removed).
    """
    report: ChainReport | None = None
    prev: AuditRecord | None = None
    marks: Mapping[int, bytes] = {}
    for r in records:
        if report is None or r.chain_id != report.chain_id:
            if report is not None:
                yield _close(report, marks)
            report = ChainReport(chain_id=r.chain_id, first_seq=r.seq)
            marks = (checkpoints or {}).get(r.chain_id, {})
            prev = None
        report.events += 1
        report.last_seq = r.seq
        report.last_id = r.id
        if report.broken is not None:
            continue
        problem = _check(prev, r, keys, r.chain_id in accept_unkeyed)
        if problem is None and r.seq in marks and not hmac.compare_digest(marks[r.seq], r.hash):
            problem = "differs from the published checkpoint of this seq (re-sealed)"
        if problem is not None:
            report.broken = ChainBreak(r.chain_id, r.id, r.seq, problem)
        if r.key_id is None:
            report.unkeyed = True
        prev = r
    if report is not None:
        yield _close(report, marks)


def _close(report: ChainReport, marks: Mapping[int, bytes]) -> ChainReport:
    if not marks:
        return report
    top = max(marks)
    if report.broken is None and top > report.last_seq:
        missing = f"seq {report.last_seq + 1}..{top}"
        report.broken = ChainBreak(
            report.chain_id,
            report.last_id,
            report.last_seq,
            f"newest events {missing} missing (a published checkpoint names seq {top})",
        )
    report.checkpoint_seq = top
    return report


def missing_chains(seen: Collection[str], checkpoints: Checkpoints) -> list[str]:
    """Report lines for chains that checkpoints name but the table no longer holds at all."""
    return [
        f"BROKEN chain {chain}: every event missing (seq 1..{max(marks)}; "
        "a published checkpoint names it)"
        for chain, marks in sorted(checkpoints.items())
        if chain not in seen and marks
    ]


def _check(
    prev: AuditRecord | None, r: AuditRecord, keys: ChainKeys, legacy_ok: bool
) -> str | None:
    if prev is None:
        if r.seq == 1 and r.prev_hash != GENESIS:
            return "first event of the chain does not start from the genesis hash"
    elif r.seq == prev.seq:
        return f"duplicate seq {r.seq}"
    elif r.seq != prev.seq + 1:
        missing = r.seq - prev.seq - 1
        return f"{missing} event(s) missing before it (seq {prev.seq + 1}..{r.seq - 1})"
    elif r.prev_hash != prev.hash:
        return "prev_hash does not match the previous event's MAC"
    if r.key_id is None:
        if not legacy_ok:
            return (
                "unkeyed (plain SHA-256) event in a chain not accepted as unkeyed: "
                "re-sealed without the key, or written before the keyed chain"
            )
        canonical = canonical_bytes(r, chain_id=r.chain_id, seq=r.seq)
        if legacy_hash(r.prev_hash, canonical) != r.hash:
            return "content does not match its hash (modified)"
        return None
    if prev is not None and prev.key_id is None:
        return "keyed event in an unkeyed chain"
    canonical = canonical_bytes(r, chain_id=r.chain_id, seq=r.seq, key_id=r.key_id)
    mac = keys.mac(r.key_id, r.prev_hash, canonical)
    if mac is None:
        return f"sealed under key id {r.key_id!r}, which AUTH_SECRET_KEYS does not hold"
    if not hmac.compare_digest(mac, r.hash):
        return "content does not match its MAC (modified or re-sealed)"
    return None
