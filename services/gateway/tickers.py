"""Ticker statistics of many symbols at once, from the candles Postgres keeps (migration 0012).

A window's statistics are one grouped statement over the stored candles of its level (one-minute candles for
rolling windows, ``shared.candles.level_for`` for a trading day), plus the close before the window and each
symbol's last trade (its price, quantity and time), both through primary keys. The best bid and ask come from
the depth market-data keeps in Redis. What the numbers mean is ``shared.tickers``.
"""

from __future__ import annotations

from typing import TypeAlias, cast

import asyncpg

from shared import redis as sredis
from shared.candles import MINUTE_MS
from shared.rediskeys import market_key
from shared.tickers import Stats

WINDOW = """
SELECT symbol, (array_agg(open_ticks ORDER BY open_time))[1], max(high_ticks), min(low_ticks),
       (array_agg(close_ticks ORDER BY open_time DESC))[1], sum(volume_lots), sum(quote_nu), sum(trades),
       min(first_trade_id), max(last_trade_id)
FROM klines WHERE symbol = ANY($1::text[]) AND width_ms = $2 AND open_time >= $3 AND open_time <= $4
GROUP BY symbol"""
CLOSE_BEFORE = """
SELECT s.symbol, p.close_ticks FROM unnest($1::text[]) AS s(symbol)
CROSS JOIN LATERAL (SELECT close_ticks FROM klines k WHERE k.symbol = s.symbol AND k.width_ms = $2 AND k.open_time < $3
                    ORDER BY k.open_time DESC LIMIT 1) p"""
LAST_TRADE = """
SELECT s.symbol, t.price_ticks, t.qty_lots, t.ts FROM unnest($1::text[]) AS s(symbol)
CROSS JOIN LATERAL (SELECT price_ticks, qty_lots, ts FROM trades WHERE trades.symbol = s.symbol
                    ORDER BY trade_id DESC LIMIT 1) t"""
RECENT = """
SELECT coalesce(sum(volume_lots), 0), coalesce(sum(quote_nu), 0) FROM klines
WHERE symbol = $1 AND width_ms = $2 AND open_time >= $3"""

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
Book: TypeAlias = tuple[int, int, int, int]  # best bid, its lots, best ask, its lots (0 where a side is empty)


async def window(db: Db, symbols: list[str], level: int, open_time: int, close_time: int) -> dict[str, Stats]:
    """Each symbol's statistics over the stored candles of ``level`` opening in [open_time, close_time]."""
    rows = {r[0]: r for r in await db.fetch(WINDOW, symbols, level, open_time, close_time)}
    prev = {r[0]: int(r[1]) for r in await db.fetch(CLOSE_BEFORE, symbols, level, open_time)}
    out = {}
    for s in symbols:
        p = prev.get(s, 0)
        r = rows.get(s)
        if r is None:
            out[s] = Stats(open_time, close_time, p, p, p, p, 0, 0, 0, -1, -1, p)
        else:
            open_, high, low, last, vol, quote, n, first_id, last_id = (int(v) for v in r[1:])
            out[s] = Stats(open_time, close_time, open_, high, low, last, vol, quote, n, first_id, last_id, p)
    return out


async def last_trades(db: Db, symbols: list[str]) -> dict[str, tuple[int, int, int]]:
    """Each symbol's last trade: (price ticks, lots, time); symbols that never traded are left out."""
    return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in await db.fetch(LAST_TRADE, symbols)}


async def recent(db: Db, symbol: str, since: int) -> tuple[int, int]:
    """(lots, notional units) traded in the one-minute candles opening at or after ``since``."""
    row = await db.fetchrow(RECENT, symbol, MINUTE_MS, since)
    assert row is not None
    return int(row[0]), int(row[1])


async def books(cache: sredis.Client, symbols: list[str]) -> dict[str, Book]:
    """Each symbol's best bid and ask from market-data's depth."""
    pipe = cache.pipeline(transaction=False)
    for s in symbols:
        pipe.hgetall(market_key(s, "bids"))
        pipe.hgetall(market_key(s, "asks"))
    replies = cast(list[dict[bytes, bytes]], await pipe.execute())
    out = {}
    for i, s in enumerate(symbols):
        bids = {int(p): int(q) for p, q in replies[2 * i].items()}
        asks = {int(p): int(q) for p, q in replies[2 * i + 1].items()}
        bid = max(bids) if bids else 0
        ask = min(asks) if asks else 0
        out[s] = (bid, bids.get(bid, 0), ask, asks.get(ask, 0))
    return out
