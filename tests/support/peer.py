"""The TCP peer of in-process requests.

Litestar's test transport reports every request as coming from ``"testclient"``,
which is not an address: under the ``AUTH_TRUSTED_PROXIES`` rule such a peer is
never a trusted proxy, so forwarded headers would be ignored. `FromPeer` makes
requests arrive from the address a real server would report (the gateway's,
or a client's), so tests exercise the production rule rather than bypass it.
"""

from __future__ import annotations

from typing import Any

__all__ = ("GATEWAY", "FromPeer")

GATEWAY = "127.0.0.1"
"""A gateway on the same host: trusted by the default ``AUTH_TRUSTED_PROXIES``."""


class FromPeer:
    """ASGI wrapper: every HTTP request of the wrapped app comes from ``peer``."""

    def __init__(self, app: Any, peer: str = GATEWAY) -> None:
        self.app = app
        self.peer = peer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": (self.peer, 50000)}
        await self.app(scope, receive, send)
