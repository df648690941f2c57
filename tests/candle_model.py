"""The simple model of klines the tests compare against: a symbol's trades grouped by candle, read off one by one.

A trade is ``(trade_id, price_ticks, qty_lots, buyer_is_maker, ts)``. Candles exist from the first trade's to
now's; one with no trade has every price at the previous close and nothing traded (Binance's). Only the
bucketing itself (``shared.candles.bucket_open``/``next_open``, checked against a calendar in
``tests/unit/shared/test_candles.py``) is shared with the code under test.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from shared.candles import Candle, Interval, bucket_open, next_open

ModelTrade = tuple[int, int, int, bool, int]


def traded(trades: Iterable[ModelTrade], iv: Interval, offset_ms: int) -> dict[int, Candle]:
    """The candles that hold trades, by open time."""
    found: dict[int, Candle] = {}
    for trade_id, price, lots, buyer_is_maker, ts in sorted(trades):
        o = bucket_open(ts, iv, offset_ms)
        c = found.setdefault(o, Candle.empty(o, next_open(o, iv, offset_ms) - 1, price))
        c.add(trade_id, price, lots, not buyer_is_maker)
    return found


def candles_at(trades: Iterable[ModelTrade], iv: Interval, offset_ms: int, wanted: Iterable[int]) -> list[Candle]:
    """The model's candle for each open time in ``wanted`` (all at or after the first trade's candle)."""
    found = traded(trades, iv, offset_ms)
    keys = sorted(found)
    out = []
    for t in wanted:
        c = found.get(t)
        if c is None:
            before = bisect.bisect_left(keys, t)
            assert before, f"{t} is before the first trade's candle"
            c = Candle.empty(t, next_open(t, iv, offset_ms) - 1, found[keys[before - 1]].close)
        out.append(c)
    return out


def every_open(trades: Iterable[ModelTrade], iv: Interval, offset_ms: int, now: int) -> list[int]:
    """Every candle's open time, from the first trade's candle to now's."""
    t = bucket_open(min(ts for *_, ts in trades), iv, offset_ms)
    out = []
    while t <= now:
        out.append(t)
        t = next_open(t, iv, offset_ms)
    return out
