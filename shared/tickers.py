"""Price statistics over a window of candles, and their Binance shapes (REST tickers and ticker streams). Pure.

A window is read at one-minute grain, as Binance's rolling tickers are: it opens on the minute that holds
``now - window`` and closes now, so it is up to 59,999 ms wider than asked (Binance: "openTime always starts
on a minute"). ``ticker/24hr`` and the ``@ticker`` streams are the 1d window; ``ticker/tradingDay`` the day
on a zone's clock. A window with no trade keeps the last price before it (open, high, low and last are the
previous close) and has nothing traded, ``firstId``/``lastId`` -1.

Decimal rendering: prices and volumes as the market's units; ``priceChangePercent`` with 3 decimals and
``weightedAvgPrice`` (quote volume over volume) with 8, rounded half-even as Decimal does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .candles import DAY_MS, HOUR_MS, MINUTE_MS, Candle
from .domain import Market

_WINDOW = re.compile(r"^([1-9][0-9]?)([mhd])$")
WINDOW_UNITS = {"m": (MINUTE_MS, 59), "h": (HOUR_MS, 23), "d": (DAY_MS, 7)}  # Binance: 1m-59m, 1h-23h, 1d-7d
STREAM_WINDOWS = ("1h", "4h", "1d")  # ``<symbol>@ticker_<window>``
AVG_PRICE_MS = 5 * MINUTE_MS  # ``avgPrice``: the last 5 minutes
CENT = Decimal("0.001")
ATOM = Decimal("0.00000001")


def parse_window(raw: str) -> int:
    """A ``windowSize`` (``1m``..``59m``, ``1h``..``23h``, ``1d``..``7d``) in ms; ValueError otherwise."""
    m = _WINDOW.match(raw)
    if m is None or int(m.group(1)) > WINDOW_UNITS[m.group(2)][1]:
        raise ValueError(f"windowSize {raw[:20]!r} is not 1m-59m, 1h-23h or 1d-7d")
    return int(m.group(1)) * WINDOW_UNITS[m.group(2)][0]


def window_open(now: int, window_ms: int) -> int:
    """The minute a rolling window of ``window_ms`` ending now opens on."""
    start = now - window_ms
    return start - start % MINUTE_MS


@dataclass(frozen=True, slots=True)
class Stats:
    """A window's trading in integer units (ticks, lots, notional units); prices 0 before any trade at all."""

    open_time: int
    close_time: int
    open: int
    high: int
    low: int
    last: int
    volume: int
    quote_volume: int
    trades: int
    first_id: int
    last_id: int
    prev_close: int  # the last price before the window (0 if none)


def stats(candles: Iterable[Candle], open_time: int, close_time: int, prev_close: int) -> Stats:
    """Roll the window's candles (in time order, only traded ones count) into its statistics."""
    traded = [c for c in candles if c.trades]
    if not traded:
        p = prev_close
        return Stats(open_time, close_time, p, p, p, p, 0, 0, 0, -1, -1, prev_close)
    return Stats(
        open_time,
        close_time,
        traded[0].open,
        max(c.high for c in traded),
        min(c.low for c in traded),
        traded[-1].close,
        sum(c.volume for c in traded),
        sum(c.quote_volume for c in traded),
        sum(c.trades for c in traded),
        traded[0].first_trade,
        traded[-1].last_trade,
        prev_close,
    )


def _price(m: Market, ticks: int) -> Decimal:
    return ticks * m.tick_size


def change(m: Market, s: Stats) -> tuple[str, str, str]:
    """``priceChange``, ``priceChangePercent`` and ``weightedAvgPrice``."""
    diff = _price(m, s.last - s.open)
    pct = (diff / _price(m, s.open) * 100).quantize(CENT) if s.open else Decimal(0).quantize(CENT)
    wavg = (s.quote_volume * m.tick_size / s.volume).quantize(ATOM) if s.volume else Decimal(0).quantize(ATOM)
    return f"{diff:.8f}", f"{pct:.3f}", f"{wavg:.8f}"


def mini(m: Market, s: Stats) -> dict[str, Any]:
    """The MINI shape of ``ticker/24hr``, ``ticker`` and ``ticker/tradingDay``."""
    return {
        "symbol": m.symbol,
        "openPrice": m.fmt_price(s.open),
        "highPrice": m.fmt_price(s.high),
        "lowPrice": m.fmt_price(s.low),
        "lastPrice": m.fmt_price(s.last),
        "volume": m.fmt_qty(s.volume),
        "quoteVolume": m.fmt_notional(s.quote_volume),
        "openTime": s.open_time,
        "closeTime": s.close_time,
        "firstId": s.first_id,
        "lastId": s.last_id,
        "count": s.trades,
    }


def full(m: Market, s: Stats) -> dict[str, Any]:
    """The FULL shape of ``ticker`` (rolling) and ``ticker/tradingDay``."""
    p, pct, wavg = change(m, s)
    return {
        "symbol": m.symbol,
        "priceChange": p,
        "priceChangePercent": pct,
        "weightedAvgPrice": wavg,
        **{k: v for k, v in mini(m, s).items() if k != "symbol"},
    }


def day_full(m: Market, s: Stats, last_qty: int, book: tuple[int, int, int, int]) -> dict[str, Any]:
    """The FULL shape of ``ticker/24hr``: with the previous close, the last quantity and the best bid and ask
    (``book``: bid price, bid lots, ask price, ask lots; 0 where a side is empty)."""
    p, pct, wavg = change(m, s)
    bid, bid_qty, ask, ask_qty = book
    return {
        "symbol": m.symbol,
        "priceChange": p,
        "priceChangePercent": pct,
        "weightedAvgPrice": wavg,
        "prevClosePrice": m.fmt_price(s.prev_close),
        "lastPrice": m.fmt_price(s.last),
        "lastQty": m.fmt_qty(last_qty),
        "bidPrice": m.fmt_price(bid),
        "bidQty": m.fmt_qty(bid_qty),
        "askPrice": m.fmt_price(ask),
        "askQty": m.fmt_qty(ask_qty),
        **{k: v for k, v in mini(m, s).items() if k not in ("symbol", "lastPrice")},
    }


def day_event(m: Market, s: Stats, last_qty: int, book: tuple[int, int, int, int], event_ts: int) -> dict[str, Any]:
    """The ``<symbol>@ticker`` event (``24hrTicker``)."""
    p, pct, wavg = change(m, s)
    bid, bid_qty, ask, ask_qty = book
    return {
        "e": "24hrTicker",
        "E": event_ts,
        "s": m.symbol,
        "p": p,
        "P": pct,
        "w": wavg,
        "x": m.fmt_price(s.prev_close),
        "c": m.fmt_price(s.last),
        "Q": m.fmt_qty(last_qty),
        "b": m.fmt_price(bid),
        "B": m.fmt_qty(bid_qty),
        "a": m.fmt_price(ask),
        "A": m.fmt_qty(ask_qty),
        "o": m.fmt_price(s.open),
        "h": m.fmt_price(s.high),
        "l": m.fmt_price(s.low),
        "v": m.fmt_qty(s.volume),
        "q": m.fmt_notional(s.quote_volume),
        "O": s.open_time,
        "C": s.close_time,
        "F": s.first_id,
        "L": s.last_id,
        "n": s.trades,
    }


def mini_event(m: Market, s: Stats, event_ts: int) -> dict[str, Any]:
    """The ``<symbol>@miniTicker`` event (``24hrMiniTicker``)."""
    return {
        "e": "24hrMiniTicker",
        "E": event_ts,
        "s": m.symbol,
        "c": m.fmt_price(s.last),
        "o": m.fmt_price(s.open),
        "h": m.fmt_price(s.high),
        "l": m.fmt_price(s.low),
        "v": m.fmt_qty(s.volume),
        "q": m.fmt_notional(s.quote_volume),
    }


def window_event(m: Market, s: Stats, window: str, event_ts: int) -> dict[str, Any]:
    """The ``<symbol>@ticker_<window>`` event (``1hTicker``, ``4hTicker``, ``1dTicker``)."""
    p, pct, wavg = change(m, s)
    return {
        "e": f"{window}Ticker",
        "E": event_ts,
        "s": m.symbol,
        "p": p,
        "P": pct,
        "o": m.fmt_price(s.open),
        "h": m.fmt_price(s.high),
        "l": m.fmt_price(s.low),
        "c": m.fmt_price(s.last),
        "w": wavg,
        "v": m.fmt_qty(s.volume),
        "q": m.fmt_notional(s.quote_volume),
        "O": s.open_time,
        "C": s.close_time,
        "F": s.first_id,
        "L": s.last_id,
        "n": s.trades,
    }


def avg_price(m: Market, volume: int, quote_volume: int, last: int) -> str:
    """The average price of the last ``AVG_PRICE_MS`` (the last price when nothing traded in them)."""
    if not volume:
        return m.fmt_price(last)
    return f"{(quote_volume * m.tick_size / volume).quantize(ATOM):.8f}"


def book_event(m: Market, update_id: int, book: tuple[int, int, int, int]) -> dict[str, Any]:
    """The ``<symbol>@bookTicker`` event: the best bid and ask after depth update ``update_id``."""
    bid, bid_qty, ask, ask_qty = book
    return {
        "u": update_id,
        "s": m.symbol,
        "b": m.fmt_price(bid),
        "B": m.fmt_qty(bid_qty),
        "a": m.fmt_price(ask),
        "A": m.fmt_qty(ask_qty),
    }
