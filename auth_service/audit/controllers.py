"""``GET /admin/audit-events`` and ``GET /admin/audit-checkpoints`` (CONTRACT §9).

Both need the realm role ``auth-auditor``. Events come newest first;
checkpoints are the latest published head of every chain
(`auth_service.audit.checkpoints`), the JSON ``audit verify --checkpoints`` reads.

Pagination is keyset on ``(occurred_at, id)``: the opaque ``cursor`` names the
last event of the previous page and the next page starts strictly below it,
so events that arrive meanwhile (newer, hence above the first page) never
shift a page: no gaps, no repeats.

Authentication: a bearer token with the ``auth-auditor`` realm role
(`auth_service.tokens.guards.requires_realm_role`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, QueryParameter
from redis.exceptions import RedisError

from auth_service.audit.checkpoints import CheckpointList, CheckpointStore
from auth_service.audit.store import AuditPage, AuditQuery, InvalidCursor, query_events
from auth_service.errors import BadRequest, DependencyUnavailable
from auth_service.resources import Resources, provide_resources
from auth_service.tokens.guards import requires_realm_role

__all__ = ("AUDITOR_ROLE", "AuditController")

AUDITOR_ROLE = "auth-auditor"
MAX_LIMIT = 1000


class AuditController(Controller):
    """Read access to the audit trail for auditors."""

    path = "/admin"
    guards = [requires_realm_role(AUDITOR_ROLE)]
    dependencies = {"res": Provide(provide_resources, sync_to_thread=False)}

    @get("/audit-events", cache_control=None)
    async def list_events(
        self,
        res: NamedDependency[Resources],
        type: FromQuery[str | None] = None,
        subject: FromQuery[str | None] = None,
        since: FromQuery[dt.datetime | None] = None,
        until: FromQuery[dt.datetime | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
        cursor: FromQuery[str | None] = None,
        request_id: FromQuery[str | None] = None,
    ) -> AuditPage:
        """Events matching the filters, newest first; ``next_cursor`` is null on the last page."""
        query = AuditQuery(
            type=type,
            subject=subject,
            request_id=request_id,
            since=_aware(since),
            until=_aware(until),
            limit=limit,
            cursor=cursor,
        )
        try:
            return await query_events(res.pg, query)
        except InvalidCursor as exc:
            raise BadRequest("invalid cursor", reason="invalid_cursor") from exc

    @get("/audit-checkpoints", cache_control=None)
    async def list_checkpoints(self, res: NamedDependency[Resources]) -> CheckpointList:
        """The latest checkpoint (chain id, seq, MAC, key id, time) of every chain."""
        store = CheckpointStore(res.redis, res.settings.redis_prefix)
        try:
            return CheckpointList(checkpoints=await store.latest())
        except RedisError as exc:
            raise DependencyUnavailable(
                "checkpoints cannot be read now; the audit_checkpoint log lines have them",
                reason="redis_unavailable",
            ) from exc


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value
