"""Chain checkpoints published outside the database (CONTRACT §9).

The table alone cannot show that a chain's *newest* events were removed: what
is left is still a valid chain. So every writer publishes, at least every
`CHECKPOINT_INTERVAL` seconds and once more when it stops, the head of its
chain that reached PostgreSQL: ``(chain_id, seq, mac, key_id)``, where ``mac``
is that event's link (the HMAC of the whole chain up to it). It goes to two
places the table owner does not control:

* one structured log line, ``event="audit_checkpoint"``, into the log pipeline;
* Redis, one hash field per chain (`CheckpointStore`), which
  ``GET /admin/audit-checkpoints`` serves to auditors.

``auth-service audit verify --checkpoints FILE`` reads either form back
(`parse_checkpoints`): JSON lines of logged checkpoints (other log lines are
skipped), or the JSON the endpoint returns. A chain that no longer reaches a
checkpoint's seq, or whose event at that seq carries another MAC, is reported
as broken.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import msgspec
import structlog
from redis.asyncio import Redis

from auth_service.audit.chain import Checkpoints

__all__ = (
    "CHECKPOINT_INTERVAL",
    "Checkpoint",
    "CheckpointList",
    "CheckpointStore",
    "InvalidCheckpoints",
    "by_chain",
    "log_checkpoint",
    "parse_checkpoints",
)

CHECKPOINT_INTERVAL = 30.0
"""Seconds between two checkpoints of a writer (the contract asks for at least one a minute)."""

log = structlog.get_logger("auth_service.audit.checkpoints")


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """The head of one writer's chain as far as it reached PostgreSQL."""

    chain_id: str
    seq: int
    mac: str
    """Hex MAC of the event at ``seq`` (its ``hash`` column)."""
    key_id: str | None = None
    """Key that sealed it."""
    at: str = ""
    """When it was published (ISO 8601, UTC)."""


class CheckpointList(msgspec.Struct):
    """``GET /admin/audit-checkpoints``: the latest checkpoint of every chain."""

    checkpoints: list[Checkpoint]


class InvalidCheckpoints(ValueError):
    """A checkpoint file that is neither JSON lines of checkpoints nor the endpoint's JSON."""


def make_checkpoint(chain_id: str, seq: int, mac: bytes, key_id: str | None) -> Checkpoint:
    """A checkpoint stamped with the current time."""
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return Checkpoint(chain_id=chain_id, seq=seq, mac=mac.hex(), key_id=key_id, at=at)


def log_checkpoint(cp: Checkpoint) -> None:
    """Write the ``audit_checkpoint`` log line."""
    log.info(
        "audit_checkpoint",
        chain_id=cp.chain_id,
        seq=cp.seq,
        mac=cp.mac,
        key_id=cp.key_id,
        at=cp.at,
    )


class CheckpointStore:
    """The latest checkpoint of every chain, in one Redis hash (``<prefix>audit:checkpoints``)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.key = f"{prefix}audit:checkpoints"

    async def publish(self, cp: Checkpoint) -> None:
        """Record ``cp`` as its chain's latest checkpoint."""
        await self.redis.hset(self.key, cp.chain_id, msgspec.json.encode(cp))

    async def latest(self) -> list[Checkpoint]:
        """Every chain's latest checkpoint, ordered by chain id."""
        raw: dict[bytes | str, bytes | str] = await self.redis.hgetall(self.key)
        out: list[Checkpoint] = []
        for value in raw.values():
            try:
                out.append(msgspec.json.decode(value, type=Checkpoint))
            except msgspec.DecodeError:
                continue
        out.sort(key=lambda c: c.chain_id)
        return out


def _from_obj(obj: Any) -> Checkpoint | None:
    if not isinstance(obj, dict):
        return None
    if "event" in obj and obj["event"] != "audit_checkpoint":
        return None
    try:
        cp = msgspec.convert(
            {k: obj[k] for k in ("chain_id", "seq", "mac", "key_id", "at") if k in obj},
            Checkpoint,
        )
        bytes.fromhex(cp.mac)
    except (msgspec.ValidationError, ValueError):
        return None
    return cp


def parse_checkpoints(text: str) -> list[Checkpoint]:
    """Checkpoints from a file: the endpoint's JSON, or JSON log lines (others skipped).

    Raises:
        InvalidCheckpoints: the file holds no checkpoint at all.
    """
    found: list[Checkpoint] = []
    try:
        whole: Any = msgspec.json.decode(text)
    except msgspec.DecodeError:
        whole = None
    if isinstance(whole, dict) and isinstance(whole.get("checkpoints"), list):
        items: Iterable[Any] = whole["checkpoints"]
    elif isinstance(whole, list):
        items = whole
    elif whole is not None:
        items = [whole]
    else:
        items = []
        for line in text.splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                items.append(msgspec.json.decode(line))
            except msgspec.DecodeError:
                continue
    for item in items:
        cp = _from_obj(item)
        if cp is not None:
            found.append(cp)
    if not found:
        raise InvalidCheckpoints("no audit checkpoint found (JSON lines or the endpoint's JSON)")
    return found


def by_chain(checkpoints: Iterable[Checkpoint]) -> Checkpoints:
    """chain id → seq → MAC, for `auth_service.audit.chain.verify_records`."""
    out: dict[str, dict[int, bytes]] = {}
    for cp in checkpoints:
        out.setdefault(cp.chain_id, {})[cp.seq] = bytes.fromhex(cp.mac)
    return out
