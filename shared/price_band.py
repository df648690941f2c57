"""PERCENT_PRICE_BY_SIDE and MARKET price protection: the prices an order may trade at, from the average price.

Pure. The average is Binance's ``avgPrice``: the volume-weighted price of the last 5 minutes' trades, or the
last trade's price when none traded in them; ``None`` before a market's first trade, when no band applies (as
Binance, whose filter needs an average). It is an exact ``Fraction`` of ticks, so no bound is off by rounding.

- A LIMIT (or LIMIT_MAKER) BUY's price must lie within [avg * bid_down, avg * bid_up], a SELL's within
  [avg * ask_down, avg * ask_up]; otherwise -1013 "Filter failure: PERCENT_PRICE_BY_SIDE", at entry.
- A MARKET order takes no price from its owner, so it gets its side's far bound as its limit (a BUY the
  highest price a BUY may have, a SELL the lowest): the matcher takes the book up to it and expires the rest,
  as Binance's price protection does, instead of sweeping every level; its hold is then bounded too.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Final

from .domain import Market, Side
from .errors import ApiError

FILTER_FAILURE: Final = -1013
MSG: Final = "Filter failure: PERCENT_PRICE_BY_SIDE"


def bounds(m: Market, side: Side, avg: Fraction) -> tuple[int, int]:
    """(lowest, highest) price in ticks an order of ``side`` may have; the lowest is at least one tick."""
    down, up = (m.bid_down, m.bid_up) if side is Side.BUY else (m.ask_down, m.ask_up)
    low = math.ceil(avg * Fraction(down))
    high = math.floor(avg * Fraction(up))
    return max(low, 1), high


def check_limit(m: Market, side: Side, price_ticks: int, avg: Fraction | None) -> None:
    """Raise Binance's -1013 if a limit price lies outside its side's band."""
    if avg is None:
        return
    low, high = bounds(m, side, avg)
    if not low <= price_ticks <= high:
        raise ApiError(FILTER_FAILURE, MSG)


def market_limit(m: Market, side: Side, avg: Fraction | None) -> int:
    """The limit a MARKET order takes the book up to (0: none, before the first trade)."""
    if avg is None:
        return 0
    low, high = bounds(m, side, avg)
    return high if side is Side.BUY else low


def average(volume_lots: int, quote_nu: int, last_ticks: int | None) -> Fraction | None:
    """The average price in ticks from the window's volume and notional, else the last trade's price."""
    if volume_lots:
        return Fraction(quote_nu, volume_lots)
    return None if last_ticks is None else Fraction(last_ticks)
