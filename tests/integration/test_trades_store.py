"""Trades over all history on a real Postgres (``services.gateway.trades``): historical trades, and aggregates
from an id, from a time, and the newest, are the model's (``tests/unit/shared/test_aggtrades.py``'s runs of one
taker order at one price and time) whatever the page size.

Trades go in as settlement writes them (``COPY`` as ``spot_settlement``, so the candles trigger fills the klines the
time lookup reads); the reads run as ``spot_gateway``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.gateway import trades
from services.settlement.accounts import TRADE_COLUMNS
from shared import postgres
from shared.aggtrades import Fill, aggregate
from tests.unit.shared.test_aggtrades import _model

BASE = 1_704_067_200_000
GAPS = [0, 0, 0, 1, 999, 1_000, 59_999, 60_000, 3_600_000]
plans = st.lists(
    st.tuples(st.integers(1, 3), st.integers(10, 11), st.integers(1, 9), st.booleans(), st.sampled_from(GAPS)),
    min_size=1,
    max_size=60,
)
_symbols = iter(range(10**6))


@pytest.fixture(scope="module")
def url(module_env: dict[str, str]) -> Iterator[str]:
    postgres.migrate(module_env["DATABASE_URL"])
    yield module_env["DATABASE_URL"]


def _fills(plan: list[tuple[int, int, int, bool, int]]) -> list[Fill]:
    out, ts = [], BASE + 12_345
    for trade_id, (taker, price, qty, maker, gap) in enumerate(plan, start=1):
        ts += gap
        out.append(Fill(trade_id, price, qty, taker, maker, ts))
    return out


async def _insert(conn: asyncpg.Connection, symbol: str, fills: list[Fill]) -> None:
    rows = []
    for f in fills:  # the maker's order: one of its own per trade
        buyer, seller = (
            (10_000 + f.trade_id, f.taker_order_id) if f.buyer_is_maker else (f.taker_order_id, 10_000 + f.trade_id)
        )
        rows.append(
            (
                symbol,
                f.trade_id,
                f.trade_id,
                f.price_ticks,
                f.qty_lots,
                buyer,
                seller,
                1,
                2,
                f.buyer_is_maker,
                0,
                0,
                f.ts,
            )
        )
    await conn.execute("SET ROLE spot_settlement")
    for i in range(0, len(rows), 9):
        await conn.copy_records_to_table("trades", columns=TRADE_COLUMNS, records=rows[i : i + 9])
    await conn.execute("SET ROLE spot_gateway")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plans, st.integers(1, 6), st.data())
def test_trades_and_aggregates_over_all_history_are_the_models(url: str, plan, limit: int, data) -> None:
    fills = _fills(plan)
    want = _model(fills)
    assert aggregate(fills) == want
    symbol = f"T{next(_symbols)}USDT"
    from_id = data.draw(st.integers(1, len(fills) + 1))
    start = data.draw(st.sampled_from([f.ts for f in fills] + [BASE, fills[-1].ts + 1, fills[0].ts + 500]))
    end = data.draw(st.sampled_from([start, start + 1_000, start + 3_600_000]))

    async def check() -> None:
        conn = await asyncpg.connect(url)
        try:
            await _insert(conn, symbol, fills)
            got = [r[0] for r in await trades.historical(conn, symbol, from_id, limit)]
            assert got == [f.trade_id for f in fills if f.trade_id >= from_id][:limit]
            assert [r[0] for r in await trades.historical(conn, symbol, None, limit)] == [f.trade_id for f in fills][
                -limit:
            ]
            assert (
                await trades.aggregates_from(conn, symbol, from_id, limit)
                == [a for a in want if a.agg_id >= from_id][:limit]
            )
            assert await trades.newest_aggregates(conn, symbol, limit) == want[-limit:]
            first = await trades.first_at(conn, symbol, start)
            in_window = [a for a in want if start <= a.ts <= end][:limit]
            if first is None:
                assert not [f for f in fills if f.ts >= start]
            else:
                assert all(f.ts < start for f in fills if f.trade_id < first)
                assert await trades.aggregates_from(conn, symbol, first, limit, start, end) == in_window
        finally:
            await conn.close()

    asyncio.run(check())
