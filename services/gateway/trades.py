"""A symbol's trades over all history, from the ``trades`` table settlement writes: historical and aggregate.

Every read goes through the primary key (symbol, trade_id); no index was added for it (settlement's COPY of the
trades is on the order path). A time (``startTime``) becomes a trade id through the candles Postgres keeps beside
the trades (migration 0012): the first trade of the first minute at or after it, narrowed by the seconds before
it in that minute (their last trade id, while the 1-second candles are kept). From there the trades are read in
id order and filtered by time, which holds as long as a symbol's trade times do not go backwards (its one
matcher stamps them in order).

Aggregation is ``shared.aggtrades``: whole aggregates only, so a page reads on past its last aggregate until a
trade that does not join it (at most ``SCAN_MAX`` trades a request).
"""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

from shared.aggtrades import AggTrade, Fill, aggregate, taker_order
from shared.candles import MINUTE_MS, SECOND_MS

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
SELECT = "SELECT trade_id, price_ticks, qty_lots, buyer_order_id, seller_order_id, buyer_is_maker, ts FROM trades "
FROM_ID = SELECT + "WHERE symbol = $1 AND trade_id >= $2 AND ts >= $3 ORDER BY trade_id LIMIT $4"
BEFORE = SELECT + "WHERE symbol = $1 AND trade_id < $2 ORDER BY trade_id DESC LIMIT 1"
NEWEST = SELECT + "WHERE symbol = $1 ORDER BY trade_id DESC LIMIT $2"
# the lowest trade id that may be at or after a time: $2 the time's second, $3 its minute
FIRST_AT = """
SELECT coalesce(
  (SELECT last_trade_id + 1 FROM klines WHERE symbol = $1 AND width_ms = 1000 AND open_time < $2 AND open_time >= $3
   ORDER BY open_time DESC LIMIT 1),
  (SELECT first_trade_id FROM klines WHERE symbol = $1 AND width_ms = 60000 AND open_time >= $3
   ORDER BY open_time LIMIT 1))"""
SCAN_MAX = 50_000  # trades one request reads at most: an aggregate of more is cut there
NO_TIME = -(2**63)


def _fill(r: asyncpg.Record) -> Fill:
    return Fill(int(r[0]), int(r[1]), int(r[2]), taker_order(int(r[3]), int(r[4]), bool(r[5])), bool(r[5]), int(r[6]))


async def historical(db: Db, symbol: str, from_id: int | None, limit: int) -> list[asyncpg.Record]:
    """``historicalTrades``: ``limit`` trades from ``from_id`` on, or the newest ``limit``; oldest first."""
    if from_id is None:
        return list(reversed(await db.fetch(NEWEST, symbol, limit)))
    return list(await db.fetch(FROM_ID, symbol, from_id, NO_TIME, limit))


async def first_at(db: Db, symbol: str, start: int) -> int | None:
    """The lowest trade id that may be at or after ``start`` (ms); None when no trade is."""
    found = await db.fetchval(FIRST_AT, symbol, start - start % SECOND_MS, start - start % MINUTE_MS)
    return None if found is None else int(found)


async def aggregates_from(
    db: Db, symbol: str, from_id: int, limit: int, start: int | None = None, end: int | None = None
) -> list[AggTrade]:
    """Up to ``limit`` aggregates whose first trade id is at or after ``from_id`` (and time within [start, end]),
    oldest first."""
    before_row = await db.fetchrow(BEFORE, symbol, from_id)
    before = _fill(before_row) if before_row is not None else None
    since = NO_TIME if start is None else start
    fills: list[Fill] = []
    page, cursor = limit + 1, from_id
    while True:
        rows = await db.fetch(FROM_ID, symbol, cursor, since, page)
        fills += (_fill(r) for r in rows)
        done = len(rows) < page or len(fills) >= SCAN_MAX or (end is not None and fills and fills[-1].ts > end)
        found = aggregate(fills, before)  # a trade left out for its time cannot join: aggregates share a time
        whole = found if done else found[:-1]  # the last one may go on past the page
        if end is not None:
            whole = [a for a in whole if a.ts <= end]
        if done or len(whole) >= limit:
            return whole[:limit]
        cursor = fills[-1].trade_id + 1
        page = min(2 * page, SCAN_MAX)


async def newest_aggregates(db: Db, symbol: str, limit: int) -> list[AggTrade]:
    """The newest ``limit`` aggregates, oldest first."""
    page = limit + 1
    while True:
        rows = list(reversed(await db.fetch(NEWEST, symbol, page)))
        fills = [_fill(r) for r in rows]
        if len(rows) < page:  # the symbol's first trade is among them
            return aggregate(fills)[-limit:]
        found = aggregate(fills[1:], fills[0])
        if len(found) >= limit or page >= SCAN_MAX:
            return found[-limit:]
        page = min(2 * page, SCAN_MAX)
