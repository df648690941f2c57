"""A migrated database with the default markets, for tests that run a service's Postgres step directly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from shared import postgres


@asynccontextmanager
async def markets_db(url: str) -> AsyncIterator[asyncpg.Pool]:
    await asyncio.to_thread(postgres.migrate, url)
    async with asyncpg.create_pool(url, min_size=1, max_size=2) as db:
        async with db.acquire() as conn:
            for market in postgres.DEFAULT_MARKETS:
                await postgres.upsert_market(conn, market)
        yield db
