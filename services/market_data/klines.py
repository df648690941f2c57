"""One-minute candles from trades. Pure; kline rows in Binance's 12-field array form."""

from __future__ import annotations

from dataclasses import dataclass

from shared.domain import Market
from shared.messages import Trade

MINUTE_MS = 60_000


@dataclass(slots=True)
class Kline:
    open_time: int
    open: int  # ticks
    high: int
    low: int
    close: int
    volume: int  # lots
    quote_volume: int  # notional units
    trades: int
    taker_buy_volume: int
    taker_buy_quote: int
    first_trade: int
    last_trade: int

    @classmethod
    def start(cls, t: Trade) -> Kline:
        taker_buy = not t.buyer_is_maker
        nu = t.price_ticks * t.qty_lots
        return cls(
            t.ts - t.ts % MINUTE_MS,
            t.price_ticks,
            t.price_ticks,
            t.price_ticks,
            t.price_ticks,
            t.qty_lots,
            nu,
            1,
            t.qty_lots if taker_buy else 0,
            nu if taker_buy else 0,
            t.trade_id,
            t.trade_id,
        )

    def add(self, t: Trade) -> None:
        nu = t.price_ticks * t.qty_lots
        self.high = max(self.high, t.price_ticks)
        self.low = min(self.low, t.price_ticks)
        self.close = t.price_ticks
        self.volume += t.qty_lots
        self.quote_volume += nu
        self.trades += 1
        if not t.buyer_is_maker:
            self.taker_buy_volume += t.qty_lots
            self.taker_buy_quote += nu
        self.last_trade = t.trade_id

    def row(self, m: Market) -> list[object]:
        """GET /api/v3/klines row."""
        return [
            self.open_time,
            m.fmt_price(self.open),
            m.fmt_price(self.high),
            m.fmt_price(self.low),
            m.fmt_price(self.close),
            m.fmt_qty(self.volume),
            self.open_time + MINUTE_MS - 1,
            m.fmt_notional(self.quote_volume),
            self.trades,
            m.fmt_qty(self.taker_buy_volume),
            m.fmt_notional(self.taker_buy_quote),
            "0",
        ]

    def event(self, m: Market, event_ts: int, closed: bool = False) -> dict[str, object]:
        """The ``<symbol>@kline_1m`` stream event."""
        return {
            "e": "kline",
            "E": event_ts,
            "s": m.symbol,
            "k": {
                "t": self.open_time,
                "T": self.open_time + MINUTE_MS - 1,
                "s": m.symbol,
                "i": "1m",
                "f": self.first_trade,
                "L": self.last_trade,
                "o": m.fmt_price(self.open),
                "c": m.fmt_price(self.close),
                "h": m.fmt_price(self.high),
                "l": m.fmt_price(self.low),
                "v": m.fmt_qty(self.volume),
                "n": self.trades,
                "x": closed,
                "q": m.fmt_notional(self.quote_volume),
                "V": m.fmt_qty(self.taker_buy_volume),
                "Q": m.fmt_notional(self.taker_buy_quote),
                "B": "0",
            },
        }


def fold(current: Kline | None, t: Trade) -> tuple[Kline, Kline | None]:
    """Add a trade; returns (current kline, the kline it closed or None)."""
    if current is not None and t.ts - t.ts % MINUTE_MS == current.open_time:
        current.add(t)
        return current, None
    return Kline.start(t), current
