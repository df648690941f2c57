"""Order and request ids: unique across ingestion replicas and restarts, with no round trip per order.

Each replica takes a block of ``BLOCK`` ids from the Postgres sequence ``order_id_blocks`` (hi/lo). Ids are
unique and roughly increasing, never reused, even if Redis loses its data.
"""

from __future__ import annotations

import asyncio

import asyncpg

BLOCK = 1000


class IdBlocks:
    def __init__(self, db: asyncpg.Pool) -> None:
        self._db = db
        self._next = 0
        self._end = 0
        self._lock = asyncio.Lock()

    async def next(self) -> int:
        if self._next >= self._end:
            async with self._lock:
                if self._next >= self._end:
                    hi = await self._db.fetchval("SELECT nextval('order_id_blocks')")
                    self._next, self._end = hi * BLOCK, (hi + 1) * BLOCK
        value = self._next
        self._next += 1
        return value
