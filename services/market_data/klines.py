"""The live candle of every kline stream, from trades. Pure.

A symbol has one live candle per stream it publishes (``SERIES``): every interval in UTC, and at ``+08:00``
the intervals whose candles that zone draws differently (6h, 12h, 1d, 3d, 1w, 1M; for the others
``@+08:00`` is the UTC stream, ``shared.candles.stream_kind``). A trade goes into each; a trade past a
candle's close closes it (handed back, to be published with ``x: true``) and opens the next one. A candle
the trades skipped over is not published: the REST klines fill it in at the previous close.

Trades come in trade-id order, so open, close, first and last are the first and last trade seen.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.candles import INTERVALS, STREAM_OFFSET, Candle, Interval, bucket_open, next_open, parse_time_zone
from shared.candles import stream_kind as kind_of
from shared.messages import Trade


@dataclass(frozen=True, slots=True)
class Series:
    """One kline stream of a symbol: its interval, its zone and the stream name it publishes under."""

    interval: Interval
    offset_ms: int
    kind: str  # ``kline_1h``, ``kline_1d@+08:00``


def _series() -> tuple[Series, ...]:
    zoned = parse_time_zone(STREAM_OFFSET)
    out = [Series(iv, 0, kind_of(iv)) for iv in INTERVALS.values()]
    out += [Series(iv, zoned, kind_of(iv, zoned)) for iv in INTERVALS.values() if kind_of(iv, zoned) != kind_of(iv)]
    return tuple(out)


SERIES = _series()
ONE_MINUTE = next(s for s in SERIES if s.kind == "kline_1m")


def start(s: Series, t: Trade) -> Candle:
    open_time = bucket_open(t.ts, s.interval, s.offset_ms)
    c = Candle.empty(open_time, next_open(open_time, s.interval, s.offset_ms) - 1, t.price_ticks)
    c.add(t.trade_id, t.price_ticks, t.qty_lots, not t.buyer_is_maker)
    return c


class LiveCandles:
    """The live candle of each series of one symbol."""

    def __init__(self, current: dict[str, Candle] | None = None) -> None:
        self.current: dict[str, Candle] = current or {}

    def fold(self, t: Trade) -> list[tuple[Series, Candle]]:
        """Add a trade to every series; returns the candles it closed, with their series."""
        closed = []
        for s in SERIES:
            c = self.current.get(s.kind)
            if c is not None and t.ts <= c.close_time:  # a clock step back stays in the candle
                c.add(t.trade_id, t.price_ticks, t.qty_lots, not t.buyer_is_maker)
                continue
            if c is not None:
                closed.append((s, c))
            self.current[s.kind] = start(s, t)
        return closed

    def copy(self) -> LiveCandles:
        """A copy to roll back to (a trade execution that could not be applied)."""
        return LiveCandles({k: Candle(*c.values()) for k, c in self.current.items()})

    def state(self) -> dict[str, list[int]]:
        """What Redis keeps (``kline_cur``): each series' candle as a list of integers."""
        return {k: c.values() for k, c in self.current.items()}

    @classmethod
    def restore(cls, state: object) -> LiveCandles:
        """From ``state()``; the single 1m candle of earlier versions (12 integers) becomes the 1m series'."""
        if isinstance(state, list) and len(state) == 12:
            ot, *rest = state
            return cls({ONE_MINUTE.kind: Candle(ot, ot + 60_000 - 1, *rest)})
        if not isinstance(state, dict):
            return cls()
        known = {s.kind for s in SERIES}
        return cls({k: Candle(*v) for k, v in state.items() if k in known})
