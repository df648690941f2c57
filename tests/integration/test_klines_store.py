"""Candles in Postgres (migration 0012), on a real Postgres: what the klines route answers is the candles rebuilt
from the trades alone.

Trades go in as settlement writes them (``COPY`` as ``spot_settlement``, in parts and out of order: combining
parts of a candle must not depend on their order); the reads run as ``spot_gateway`` through
``services.gateway.candles``, for every interval, in UTC and other zones, with and without startTime, endTime
and limit. The model (``tests/candle_model.py``) groups the trades by candle and fills the candles with no trade at the
previous close. Re-running the migration on the same trades (its backfill) gives the same table
as the trigger wrote.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import astuple

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.gateway import candles
from services.settlement.accounts import TRADE_COLUMNS
from shared import postgres
from shared.candles import DAY_MS, HOUR_MS, INTERVALS, MINUTE_MS, Candle, Interval, opens
from tests.candle_model import ModelTrade, candles_at

BASE = 1_704_067_200_000  # 2024-01-01 00:00 UTC, a Monday
GAPS = [0, 1, 999, 1_000, 59_999, 60_000, 7 * MINUTE_MS, HOUR_MS, 5 * HOUR_MS, DAY_MS + 1, 9 * DAY_MS, 40 * DAY_MS]
plans = st.lists(
    st.tuples(st.sampled_from(GAPS), st.integers(1, 10**9), st.integers(1, 10**12), st.booleans()),
    min_size=1,
    max_size=40,
)
ZONES = [0, 8 * HOUR_MS, -5 * HOUR_MS, 5 * HOUR_MS + 45 * MINUTE_MS]
_symbols = iter(range(10**6))


@pytest.fixture(scope="module")
def url(module_env: dict[str, str]) -> Iterator[str]:
    postgres.migrate(module_env["DATABASE_URL"])
    yield module_env["DATABASE_URL"]


def trades_of(plan: list[tuple[int, int, int, bool]]) -> list[ModelTrade]:
    trades, ts = [], BASE + 12_345
    for trade_id, (gap, price, lots, buyer_is_maker) in enumerate(plan, start=1):
        ts += gap
        trades.append((trade_id, price, lots, buyer_is_maker, ts))
    return trades


def model(
    trades: list[ModelTrade], iv: Interval, offset: int, now: int, start: int | None, end: int | None, limit: int
) -> list[Candle]:
    """The candles of a request from the trades alone (which open times: ``opens``, checked in the unit tests)."""
    first = min(t[-1] for t in trades)
    wanted = opens(iv, offset, first_trade=first, now=now, start=start, end=end, limit=limit)
    return candles_at(trades, iv, offset, wanted)


async def _insert(conn: asyncpg.Connection, symbol: str, trades: list[ModelTrade], seed: int) -> None:
    """COPY in parts, in a shuffled order, as the settlement role (the trigger runs as it)."""
    rows = [(symbol, t[0], t[0], t[1], t[2], 1, 2, 3, 4, t[3], 0, 0, t[4]) for t in trades]
    parts = [rows[i : i + 7] for i in range(0, len(rows), 7)]
    random.Random(seed).shuffle(parts)
    await conn.execute("SET ROLE spot_settlement")
    for part in parts:
        await conn.copy_records_to_table("trades", columns=TRADE_COLUMNS, records=part)
    await conn.execute("SET ROLE spot_gateway")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plans, st.integers(0, 2**16), st.sampled_from(ZONES), st.integers(1, 1000))
def test_served_candles_are_the_trades_candles(
    url: str, plan: list[tuple[int, int, int, bool]], seed: int, offset: int, limit: int
) -> None:
    trades = trades_of(plan)
    symbol = f"K{next(_symbols)}USDT"
    last = trades[-1][-1]
    now = last + 3 * DAY_MS + 17
    mid = (BASE + last) // 2

    async def check() -> None:
        conn = await asyncpg.connect(url)
        try:
            await _insert(conn, symbol, trades, seed)
            for iv in INTERVALS.values():
                for start, end in ((None, None), (mid, None), (None, mid), (BASE, mid), (now + 1, None)):
                    got = await candles.klines(conn, symbol, iv, offset, now=now, start=start, end=end, limit=limit)
                    want = model(trades, iv, offset, now, start, end, limit)
                    assert [astuple(c) for c in got] == [astuple(c) for c in want], (iv.name, offset, start, end)
        finally:
            await conn.close()

    asyncio.run(check())


def test_the_migrations_backfill_is_what_the_trigger_wrote(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    trades = trades_of([(g, 100 + i, 1 + i, i % 2 == 0) for i, g in enumerate(GAPS * 3)])

    async def table() -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(url)
        try:
            found = await conn.fetch("SELECT * FROM klines WHERE symbol = 'BACKFILLUSDT' ORDER BY width_ms, open_time")
            return [tuple(r) for r in found]
        finally:
            await conn.close()

    async def insert() -> None:
        conn = await asyncpg.connect(url)
        try:
            await _insert(conn, "BACKFILLUSDT", trades, 1)
        finally:
            await conn.close()

    asyncio.run(insert())
    written = asyncio.run(table())
    assert len(written) > 3 * 20
    cfg = Config(str(postgres.ALEMBIC_INI))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.downgrade(cfg, "0010")
    command.upgrade(cfg, "head")
    assert asyncio.run(table()) == written


def test_old_seconds_are_pruned_and_the_1s_interval_starts_at_the_oldest_kept(url: str) -> None:
    """Settlement's retention pass deletes 1s candles past ``SECONDS_KEPT_MS`` a bounded chunk at a time (as
    ``spot_settlement``); minutes and wider stay, every other interval still starts at the first trade, and 1s
    starts at the oldest second kept."""
    from services.settlement import retention
    from shared.candles import SECONDS_KEPT_MS

    now = BASE + 30 * DAY_MS
    old = [(i, 100 + i, 1, True, BASE + i * 1_000) for i in range(1, 6)]  # five seconds, a month ago
    recent = [(6 + i, 200 + i, 1, False, now - HOUR_MS + i * 1_000) for i in range(3)]
    trades = old + recent
    symbol = "BTCUSDT"  # pruning walks the markets table

    async def check() -> None:
        conn = await asyncpg.connect(url)
        try:
            for market in postgres.DEFAULT_MARKETS:
                await postgres.upsert_market(conn, market)
            await conn.execute("DELETE FROM klines WHERE symbol = $1", symbol)
            await conn.execute("DELETE FROM trades WHERE symbol = $1", symbol)
            await _insert(conn, symbol, trades, 3)
            await conn.execute("SET ROLE spot_settlement")
            saved = retention.CHUNK
            retention.CHUNK = 2  # three passes: 2, 2, 1
            try:
                keeper = retention.Retention(conn)
                deleted = [await keeper.prune(now) for _ in range(4)]
            finally:
                retention.CHUNK = saved
            assert deleted == [2, 2, 1, 0]
            await conn.execute("SET ROLE spot_gateway")
            seconds = await conn.fetch("SELECT open_time FROM klines WHERE symbol = $1 AND width_ms = 1000", symbol)
            assert sorted(r[0] for r in seconds) == [t[4] for t in recent]
            assert now - SECONDS_KEPT_MS > BASE
            for iv in (INTERVALS["1m"], INTERVALS["1d"], INTERVALS["1M"]):
                got = await candles.klines(conn, symbol, iv, 0, now=now, start=0, end=None, limit=1000)
                want = model(trades, iv, 0, now, 0, None, 1000)
                assert [astuple(c) for c in got] == [astuple(c) for c in want], iv.name
            got = await candles.klines(conn, symbol, INTERVALS["1s"], 0, now=now, start=0, end=None, limit=5)
            assert [c.open_time for c in got] == [t[4] for t in recent] + [recent[-1][4] + 1_000, recent[-1][4] + 2_000]
            await conn.execute("RESET ROLE")
            await conn.execute("DELETE FROM klines WHERE symbol = $1", symbol)
            await conn.execute("DELETE FROM trades WHERE symbol = $1", symbol)
        finally:
            await conn.close()

    asyncio.run(check())
