"""The Postgres pool on a real server: a connection goes back without asyncpg's session reset (one round
trip less per batch), yet never with a transaction left open; a statement planned while its table was empty
is planned again once the table has grown."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

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


LOOKUP = "SELECT id, pad FROM replan_probe WHERE id = ANY($1::bigint[])"


async def _seq_scans(conn: asyncpg.Connection) -> int:
    """Whole-table scans one key lookup made (this transaction's own statistics)."""
    async with conn.transaction():
        await conn.fetch(LOOKUP, list(range(1, 101)))
        scans: int = await conn.fetchval("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'replan_probe'")
        return scans


async def _replanned(database_url: str) -> tuple[list[int], list[int]]:
    async with postgres.pool(Settings(database_url=database_url), min_size=1, max_size=1) as db:
        async with db.acquire() as conn:
            await conn.execute("CREATE TABLE replan_probe (id bigint PRIMARY KEY, pad text)")
            for _ in range(8):  # planned while the table is empty: Postgres settles on a generic plan
                await conn.fetch(LOOKUP, [1, 2, 3])
            await conn.execute("INSERT INTO replan_probe SELECT g, repeat('x', 200) FROM generate_series(1, 50000) g")
            stale = [await _seq_scans(conn) for _ in range(3)]
            await asyncio.sleep(postgres.STATEMENT_REPLAN_S + 0.3)
            await _seq_scans(conn)  # prepared again
            replanned = [await _seq_scans(conn) for _ in range(8)]
    return stale, replanned


def test_a_plan_made_on_an_empty_table_is_made_again_as_it_grows(
    fresh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "STATEMENT_REPLAN_S", 1)
    stale, replanned = asyncio.run(_replanned(fresh_env["DATABASE_URL"]))
    assert stale == [1, 1, 1], "the plan made on the empty table scans the whole table"
    assert replanned == [0] * 8, replanned
