"""``GET /admin/audit-events`` (CONTRACT §9): realm role ``auth-auditor``, newest first.

Pagination is keyset on ``(occurred_at, id)``: the opaque ``cursor`` names the
last event of the previous page and the next page starts strictly below it,
so events that arrive meanwhile (newer, hence above the first page) never
shift a page: no gaps, no repeats.

Authentication goes through ``res.components["authenticator"]``, any object
with ``async authenticate_bearer(authorization_header) -> Identity`` (raising
`NotAuthenticated`), where the identity has ``subject`` and ``realm_roles``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Protocol

from litestar import Controller, get
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromQuery, QueryParameter

from auth_service.audit.store import AuditPage, AuditQuery, InvalidCursor, query_events
from auth_service.errors import AccessDenied, BadRequest, DependencyUnavailable
from auth_service.resources import Resources, provide_resources

__all__ = ("AUDITOR_ROLE", "AuditController", "Authenticator", "Identity", "requires_realm_role")

AUDITOR_ROLE = "auth-auditor"
MAX_LIMIT = 1000


class Identity(Protocol):
    """The caller as the authenticator sees it."""

    @property
    def subject(self) -> str: ...
    @property
    def realm_roles(self) -> frozenset[str]: ...


class Authenticator(Protocol):
    """Verifies a bearer ``Authorization`` header (the token service implements it)."""

    async def authenticate_bearer(self, authorization_header: str | None) -> Identity:
        """The caller's identity; raises `NotAuthenticated` when missing or invalid."""
        ...


def requires_realm_role(role: str) -> Any:
    """Guard: a valid bearer token whose realm roles include ``role``; stores the identity."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        res: Resources = connection.app.state.resources
        authenticator: Authenticator | None = res.components.get("authenticator")
        if authenticator is None:
            raise DependencyUnavailable("authentication unavailable", reason="authenticator_down")
        identity = await authenticator.authenticate_bearer(connection.headers.get("authorization"))
        if role not in identity.realm_roles:
            raise AccessDenied(f"realm role {role!r} required", reason="missing_role")
        connection.scope.setdefault("state", {})["identity"] = identity

    return guard


class AuditController(Controller):
    """Read access to the audit trail for auditors."""

    path = "/admin/audit-events"
    guards = [requires_realm_role(AUDITOR_ROLE)]
    dependencies = {"res": Provide(provide_resources, sync_to_thread=False)}

    @get("/", cache_control=None)
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


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value
