"""Waiting for an in-process app through its public interface, not its internals."""

from __future__ import annotations

import asyncio
import time

from litestar import Litestar
from litestar.testing import AsyncTestClient

__all__ = ["until_ready"]


async def until_ready(client: AsyncTestClient[Litestar], timeout: float = 15.0) -> None:
    """Poll ``GET /health/ready`` until it answers 200, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (await client.get("/health/ready")).status_code != 200:
        assert time.monotonic() < deadline, f"the service was not ready within {timeout}s"
        await asyncio.sleep(0.05)
