"""The average price each market's orders are checked against (PERCENT_PRICE_BY_SIDE): Postgres, cached.

Binance's ``avgPrice``, as the gateway answers it: the volume-weighted price of the one-minute candles of the
last 5 minutes, else the last trade's price (``shared.price_band.average``). Read once a ``FRESH_S`` per
symbol, for the symbols a batch orders in: one statement, not one per order. What an order was checked
against is recorded with it (a MARKET order's limit is stored in its row), so a redelivery decides the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from fractions import Fraction
from typing import Final

import asyncpg

from shared.candles import MINUTE_MS
from shared.price_band import average
from shared.tickers import AVG_PRICE_MS, window_open

FRESH_S: Final = 1.0  # an average over 5 minutes moves little in a second; a batch costs no query then
AVERAGES = """
SELECT s.symbol,
       (SELECT coalesce(sum(volume_lots), 0) FROM klines k
         WHERE k.symbol = s.symbol AND k.width_ms = $2 AND k.open_time >= $3),
       (SELECT coalesce(sum(quote_nu), 0) FROM klines k
         WHERE k.symbol = s.symbol AND k.width_ms = $2 AND k.open_time >= $3),
       (SELECT price_ticks FROM trades t WHERE t.symbol = s.symbol ORDER BY trade_id DESC LIMIT 1)
FROM unnest($1::text[]) AS s(symbol)"""


class Averages:
    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db
        self._known: dict[str, tuple[float, Fraction | None]] = {}  # symbol -> (read at, average)

    async def of(self, symbols: Iterable[str], now_ms: int) -> dict[str, Fraction | None]:
        """Each symbol's average price in ticks (None: it never traded)."""
        wanted = set(symbols)
        clock = time.monotonic()
        stale = sorted(s for s in wanted if (k := self._known.get(s)) is None or clock - k[0] > FRESH_S)
        if stale:
            rows = await self.db.fetch(AVERAGES, stale, MINUTE_MS, window_open(now_ms, AVG_PRICE_MS))
            for symbol, volume, quote, last in rows:
                self._known[symbol] = (clock, average(int(volume), int(quote), None if last is None else int(last)))
        return {s: self._known[s][1] for s in wanted}
