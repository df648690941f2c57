"""The Postgres pool on a real server: a connection goes back without asyncpg's session reset (one round
trip less per batch), yet never with a transaction left open."""

from __future__ import annotations

import asyncio

from shared import postgres
from shared.config import Settings


async def _released(database_url: str) -> None:
    settings = Settings(database_url=database_url)
    async with postgres.pool(settings, min_size=1, max_size=1) as db:
        async with db.acquire() as conn:
            await conn.execute("CREATE TEMP TABLE IF NOT EXISTS pool_probe (n int)")
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO pool_probe VALUES (1)")
            assert conn.is_in_transaction()
        async with db.acquire() as conn:  # the same (only) connection: the insert was rolled back
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM pool_probe") == 0
            async with conn.transaction():
                await conn.execute("INSERT INTO pool_probe VALUES (2)")
        async with db.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM pool_probe") == 1


def test_a_released_connection_never_keeps_a_transaction_open(fresh_env: dict[str, str]) -> None:
    asyncio.run(_released(fresh_env["DATABASE_URL"]))
