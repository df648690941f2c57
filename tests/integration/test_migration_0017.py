"""Migration 0017 on a real Postgres, down and up again: open orders recounted per (user, symbol) from the
orders table (and back per user), the new order columns defaulting to "nothing prevented, not an iceberg, the
market's fees", and fee tiers with their bounds."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from shared import postgres


@pytest.fixture(scope="module")
def url(module_env: dict[str, str]) -> Iterator[str]:
    postgres.migrate(module_env["DATABASE_URL"])
    yield module_env["DATABASE_URL"]


def _alembic(url: str, where: str, to: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(postgres.ALEMBIC_INI))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    (command.downgrade if where == "down" else command.upgrade)(cfg, to)


async def _run(url: str, *statements: str) -> list[list[asyncpg.Record]]:
    conn = await asyncpg.connect(url)
    try:
        return [await conn.fetch(s) for s in statements]
    finally:
        await conn.close()


def _order(order_id: int, symbol: str, status: str) -> str:
    return (
        "INSERT INTO orders (order_id, user_id, symbol, client_order_id, side, type, tif, status, hold_asset, stp, "
        f"created_ts, updated_ts) VALUES ({order_id}, 901, '{symbol}', 'm{order_id}', 'BUY', 'LIMIT', 'GTC', "
        f"'{status}', 'USDT', 'NONE', 0, 0)"
    )


def test_open_orders_are_recounted_per_symbol_and_back(url: str) -> None:
    _alembic(url, "down", "0016")
    asyncio.run(
        _run(
            url,
            "INSERT INTO users (user_id, name, created_at) VALUES (901, 'migrated', 0) ON CONFLICT DO NOTHING",
            _order(90_001, "BTCUSDT", "NEW"),
            _order(90_002, "BTCUSDT", "PARTIALLY_FILLED"),
            _order(90_003, "ETHUSDT", "NEW"),
            _order(90_004, "ETHUSDT", "FILLED"),
            "INSERT INTO open_order_counts (user_id, n) VALUES (901, 3)",
        )
    )
    _alembic(url, "up", "head")
    counts, orders = asyncio.run(
        _run(
            url,
            "SELECT symbol, n FROM open_order_counts WHERE user_id = 901 ORDER BY symbol",
            "SELECT DISTINCT prevented_lots, iceberg_lots, maker_fee_bps, taker_fee_bps FROM orders "
            "WHERE user_id = 901",
        )
    )
    assert [tuple(r) for r in counts] == [("BTCUSDT", 2), ("ETHUSDT", 1)]
    assert [tuple(r) for r in orders] == [(0, 0, -1, -1)]

    async def tiers() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("INSERT INTO fee_tiers VALUES ('mig', 2, 5)")
            await conn.execute("UPDATE users SET fee_tier = 'mig' WHERE user_id = 901")
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute("INSERT INTO fee_tiers VALUES ('steep', 2, 1001)")
            with pytest.raises(asyncpg.ForeignKeyViolationError):
                await conn.execute("UPDATE users SET fee_tier = 'nope' WHERE user_id = 901")
            await conn.execute("UPDATE users SET fee_tier = NULL WHERE user_id = 901")
            await conn.execute("DELETE FROM fee_tiers WHERE tier = 'mig'")
        finally:
            await conn.close()

    asyncio.run(tiers())
    _alembic(url, "down", "0016")
    (counts,) = asyncio.run(_run(url, "SELECT n FROM open_order_counts WHERE user_id = 901"))
    assert [r["n"] for r in counts] == [3]
    _alembic(url, "up", "head")
