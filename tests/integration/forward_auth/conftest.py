"""Helpers for forward-auth tests over the in-process app."""

from __future__ import annotations

from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

ORIGINAL = "https://app.test/orders/1"


async def auth_request(
    client: AsyncTestClient[Litestar],
    *,
    token: str | None = None,
    url: str = ORIGINAL,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Ask ``/authz/auth-request`` as nginx would."""
    h: dict[str, Any] = {"X-Original-URL": url, "X-Original-Method": method, **(headers or {})}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return await client.get("/authz/auth-request", headers=h)
