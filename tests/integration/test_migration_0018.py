"""Migration 0018 on a real Postgres, down and up again: orders rows gain their list (-1: none) and an unshared
hold, ``order_lists`` is made, and a downgrade drops both."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from shared import postgres
from tests.integration.test_migration_0017 import _alembic, _run


@pytest.fixture(scope="module")
def url(module_env: dict[str, str]) -> Iterator[str]:
    postgres.migrate(module_env["DATABASE_URL"])
    yield module_env["DATABASE_URL"]


def test_orders_gain_their_list_and_order_lists_comes_and_goes(url: str) -> None:
    _alembic(url, "down", "0017")
    asyncio.run(
        _run(
            url,
            "INSERT INTO users (user_id, name, created_at) VALUES (902, 'listed', 0) ON CONFLICT DO NOTHING",
            "INSERT INTO orders (order_id, user_id, symbol, client_order_id, side, type, tif, status, hold_asset, stp, "
            "created_ts, updated_ts) VALUES (90101, 902, 'BTCUSDT', 'l90101', 'SELL', 'LIMIT_MAKER', 'GTC', 'NEW', "
            "'BTC', 'NONE', 0, 0)",
        )
    )
    _alembic(url, "up", "head")
    (orders,) = asyncio.run(_run(url, "SELECT order_list_id, hold_shared FROM orders WHERE order_id = 90101"))
    assert [tuple(r) for r in orders] == [(-1, False)]

    async def lists() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "INSERT INTO order_lists VALUES (7, 902, 'BTCUSDT', 'OCO', 'L7', 'EXEC_STARTED', 'EXECUTING', 1, 1)"
            )
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute(
                    "INSERT INTO order_lists VALUES (7, 902, 'BTCUSDT', 'OCO', 'L8', 'EXEC_STARTED', 'EXECUTING', 1, 1)"
                )
        finally:
            await conn.close()

    asyncio.run(lists())
    _alembic(url, "down", "0017")
    (gone,) = asyncio.run(_run(url, "SELECT to_regclass('order_lists') IS NULL AS gone"))
    assert gone[0]["gone"]
    _alembic(url, "up", "head")
