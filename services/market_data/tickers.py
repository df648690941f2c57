"""The ticker streams' view of one symbol: its one-minute candles of the last day and its last trade. Pure.

Every ``TICKER_INTERVAL_MS`` market-data rolls the windows it streams (``@ticker``/``@miniTicker`` and the
``!ticker@arr``/``!miniTicker@arr`` arrays over 1d, ``@ticker_1h``/``_4h``/``_1d``, ``@avgPrice`` over 5 minutes)
from these candles, at minute grain as the REST tickers do (``shared.tickers``), and pushes those that changed.
The closed minutes come from the live candles (``klines.LiveCandles``) as trades close them; Redis keeps them
beside the live candles (``md:{S}:klines``), so a restart rolls the same windows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from shared.candles import DAY_MS, HOUR_MS, Candle
from shared.tickers import AVG_PRICE_MS, STREAM_WINDOWS, Stats, parse_window, stats, window_open

KEPT_MS = DAY_MS + 2 * HOUR_MS  # a day's window and the close before it, with room for a quiet hour
AVERAGE = "avg"  # the avgPrice window's name among ``WINDOWS``
WINDOWS = {**{name: parse_window(name) for name in STREAM_WINDOWS}, AVERAGE: AVG_PRICE_MS}  # "1d" is @ticker's too


@dataclass(frozen=True, slots=True)
class LastTrade:
    price: int
    qty: int
    ts: int


class Minutes:
    """Closed one-minute candles, oldest first, for ``KEPT_MS``; and the close of the last one let go."""

    def __init__(self, closed: Iterable[Candle] = ()) -> None:
        self.closed: deque[Candle] = deque(sorted(closed, key=lambda c: c.open_time))
        self.let_go = 0  # the close of the newest candle dropped for age: the price before them all

    def add(self, c: Candle, now: int) -> None:
        if not self.closed or c.open_time > self.closed[-1].open_time:  # else a redelivered close
            self.closed.append(c)
        while self.closed and self.closed[0].open_time < now - KEPT_MS:  # the clock moved on a redelivery too
            self.let_go = self.closed.popleft().close

    def windows(self, live: Candle | None, now: int, sizes: dict[str, int]) -> dict[str, Stats]:
        """The statistics of each window (name -> size in ms) ending now, the live minute included."""
        candles = [c for c in self.closed if c.trades]
        if live is not None and live.trades and (not candles or live.open_time > candles[-1].open_time):
            candles.append(live)
        out = {}
        for name, size_ms in sizes.items():
            start = window_open(now, size_ms)
            first = next((i for i, c in enumerate(candles) if c.open_time >= start), len(candles))
            prev = candles[first - 1].close if first else self.let_go
            out[name] = stats(candles[first:], start, now, prev)
        return out
