"""A pooled Redis connection that the server closed while it sat idle is replaced, not used.

After an outage (or an ElastiCache failover) the server is back but each process's pool still holds the
connections of before. redis-py 8 checks a connection it hands out only while maintenance notifications are
off; with its default (``"auto"``) it handed out the dead one, the next command failed with "Connection
closed by server", and the service took a second outage for it, restarting its consumers (the order
processor once stayed not-ready for a minute in ``tests/chaos/test_outages.py``).
"""

from __future__ import annotations

import asyncio
import urllib.parse

import pytest

from shared import redis as sredis
from shared.config import Settings
from tests.faults import CuttableProxy


@pytest.mark.parametrize("idle_s", [0.2, 1.0])
async def test_a_connection_closed_while_idle_is_replaced(servers: dict[str, str], idle_s: float) -> None:
    target = urllib.parse.urlsplit(servers["REDIS_URL"])
    proxy = CuttableProxy(target.port or 6379, target.hostname or "127.0.0.1").start()
    try:
        settings = Settings(redis_url=f"redis://127.0.0.1:{proxy.port}/0")
        async with sredis.client(settings) as cache:
            await asyncio.gather(*(cache.ping() for _ in range(4)))  # a few pooled connections
            proxy.cut()  # every connection reset while idle in the pool
            proxy.restore()
            await asyncio.sleep(idle_s)
            assert await cache.ping()
            pipe = cache.pipeline(transaction=False)
            pipe.set("reconnect:probe", b"1")
            pipe.get("reconnect:probe")
            assert await pipe.execute() == [True, b"1"]
            assert await asyncio.gather(*(cache.ping() for _ in range(4))) == [True] * 4
    finally:
        proxy.stop()
