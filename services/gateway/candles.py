"""Klines of any interval and time zone, rolled up in Postgres from the stored candles (migration 0012).

Which candles a request answers is pure (``shared.candles.opens``): from the candle of the symbol's first trade
to the one holding now, bounded by ``startTime``/``endTime`` and ``limit``. Postgres then rolls each of them up
from the stored level that divides it (``shared.candles.level_for``) in one statement: the wanted open and
close times go in as two arrays and every candle is a range scan of the primary key, so the rows read are at
most the limit times the interval over the level's width, whatever the number of trades. The candles with
no trade are filled in at the previous close (``shared.candles.fill``).

The stored candles are written with the trades in settlement's transaction, so a candle shows the trades
settlement has committed, a few milliseconds behind the match; the streams (market-data) show the match.
"""

from __future__ import annotations

import asyncpg

from shared.candles import MINUTE_MS, SECOND_MS, Candle, Interval, fill, level_for, next_open, opens

FIRST_TRADE = "SELECT min(open_time) FROM klines WHERE symbol = $1 AND width_ms = $2"
ROLLUP = """
SELECT b.o, b.c, k.*
FROM unnest($3::bigint[], $4::bigint[]) AS b(o, c)
CROSS JOIN LATERAL (
    SELECT (array_agg(open_ticks ORDER BY open_time))[1], max(high_ticks), min(low_ticks),
           (array_agg(close_ticks ORDER BY open_time DESC))[1], sum(volume_lots), sum(quote_nu), sum(trades),
           sum(taker_buy_lots), sum(taker_buy_nu), min(first_trade_id), max(last_trade_id)
    FROM klines WHERE symbol = $1 AND width_ms = $2 AND open_time >= b.o AND open_time < b.c
) AS k(open, high, low, close, volume, quote, trades, taker_volume, taker_quote, first_id, last_id)
WHERE k.trades IS NOT NULL"""  # a range scan of the primary key per candle: a join planned as one scan read them all
CLOSE_BEFORE = (
    "SELECT close_ticks FROM klines WHERE symbol = $1 AND width_ms = $2 AND open_time < $3 "
    "ORDER BY open_time DESC LIMIT 1"
)


async def first_trade(db: asyncpg.Pool | asyncpg.Connection, symbol: str, iv: Interval) -> int | None:
    """Where the symbol's candles of ``iv`` begin, or None before any trade: the minute of its first trade (every
    interval but 1s lays out on whole minutes, so its first candle is the same), and for 1s the oldest second
    kept (``shared.candles.SECONDS_KEPT_MS``)."""
    found = await db.fetchval(FIRST_TRADE, symbol, SECOND_MS if iv.width_ms == SECOND_MS else MINUTE_MS)
    return None if found is None else int(found)


async def klines(
    db: asyncpg.Pool | asyncpg.Connection,
    symbol: str,
    iv: Interval,
    offset_ms: int,
    *,
    now: int,
    start: int | None,
    end: int | None,
    limit: int,
) -> list[Candle]:
    """The candles of a klines request, oldest first, gaps filled."""
    wanted = opens(
        iv, offset_ms, first_trade=await first_trade(db, symbol, iv), now=now, start=start, end=end, limit=limit
    )
    if not wanted:
        return []
    level = level_for(iv, offset_ms)
    closes = [next_open(t, iv, offset_ms) for t in wanted]
    found = {
        int(r[0]): Candle(int(r[0]), int(r[1]) - 1, *(int(v) for v in r[2:]))
        for r in await db.fetch(ROLLUP, symbol, level, wanted, closes)
    }
    before = None
    if wanted[0] not in found:
        close = await db.fetchval(CLOSE_BEFORE, symbol, level, wanted[0])
        before = None if close is None else int(close)
    return fill(iv, offset_ms, wanted, found, before)
