"""The worker's Redis client against a real redis-server that restarts under it."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from auth_service.config import load_settings
from auth_service.lifespan import redis_client
from tests.support.processes import RedisProcess


async def test_pooled_connections_survive_a_redis_restart(base_env: dict[str, str]) -> None:
    """Every pooled connection is dead after a restart; each command still succeeds once."""
    with RedisProcess() as server:
        client = redis_client(
            load_settings({**base_env, "AUTH_REDIS_URL": server.url}, env_file=False)
        )
        try:
            # Five commands at once leave five connections in the pool.
            await asyncio.gather(*(client.blpop([f"idle:{i}"], timeout=0.2) for i in range(5)))
            clients = await client.client_list()
            assert len(clients) >= 5
            server.stop()
            server.start()  # empty, same port: the pooled sockets are dead
            for i in range(8):  # more than the pool holds: every dead socket gets used
                assert await client.set(f"after-restart:{i}", "1") is True
            assert await client.get("after-restart:7") == b"1"
            server.stop()
            with pytest.raises(RedisConnectionError):  # down is still down, and fast
                await asyncio.wait_for(client.ping(), 3)
        finally:
            await client.aclose()
