"""The production-wired app: real Keycloak-shaped tokens reach `/admin/audit-events`."""

from __future__ import annotations

import asyncio
import time

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.fakes.keycloak import FakeKeycloak
from tests.integration.forward_auth.conftest import auth_request


async def test_auditor_sees_denials_others_are_refused(
    service: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """A forward-auth denial becomes an event the auditor can read; bob gets 403, nobody 401."""
    bob = idp.mint_access_token("bob")
    denied = await auth_request(
        service, token=bob, method="POST", headers={"X-Request-ID": "rid-audit-1"}
    )
    assert denied.status_code == 403
    auditor = {"Authorization": f"Bearer {idp.mint_access_token('admin')}"}

    found: list[dict[str, object]] = []

    async def landed() -> bool:
        r = await service.get(
            "/admin/audit-events", params={"type": "access.denied"}, headers=auditor
        )
        assert r.status_code == 200
        found[:] = [e for e in r.json()["events"] if e["request_id"] == "rid-audit-1"]
        return bool(found)

    deadline = time.monotonic() + 10
    while not await landed() and time.monotonic() < deadline:  # poll: the writer is async
        await asyncio.sleep(0.05)
    assert found, "the denial was not audited"
    assert found[0]["reason"] == "missing_role"
    assert bob not in str(found[0])
    r = await service.get("/admin/audit-events", headers={"Authorization": f"Bearer {bob}"})
    assert r.status_code == 403
    assert (await service.get("/admin/audit-events")).status_code == 401
