"""``auth-service keys rotate [--overlap SECONDS]``: the function behind the command.

Rotation only writes the database; every worker of every instance picks the new
key up at its next key refresh (15 s), publishes it at once and signs with it
from its activation time on. Choose ``overlap`` at least as long as downstream
JWKS caching (``Cache-Control: max-age=60``) plus that refresh interval when
HTTP caches sit between the service and its verifiers.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg

from auth_service.config import Settings
from auth_service.crypto import SecretBox
from auth_service.tokens.keys import SigningKeyStore

__all__ = ("DEFAULT_OVERLAP", "rotate_keys", "rotate_keys_async")

DEFAULT_OVERLAP = 60.0
"""Seconds between publishing a new key and signing with it."""


async def rotate_keys_async(
    settings: Settings, overlap: float = DEFAULT_OVERLAP
) -> tuple[str, datetime]:
    """Create the next signing key (see `SigningKeyStore.rotate`): its kid and activation time."""
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        store = SigningKeyStore(
            pool, SecretBox(settings.secret_keys), assertion_ttl=settings.assertion_ttl
        )
        kid = await store.rotate(overlap)
        ring = await store.load()
    finally:
        await pool.close()
    activated = next(k.activated_at for k in ring.keys if k.kid == kid)
    return kid, datetime.fromtimestamp(activated, UTC)


def rotate_keys(settings: Settings, overlap: float = DEFAULT_OVERLAP) -> str:
    """Synchronous `rotate_keys_async` for the CLI: prints the kid and activation; returns the kid.

    Raises:
        ValueError: if ``overlap`` is negative.
    """
    kid, activated = asyncio.run(rotate_keys_async(settings, overlap))
    when = activated.isoformat(timespec="seconds")
    print(f"new signing key {kid}: published now, signs from {when} (in {overlap:g} s)")
    return kid
