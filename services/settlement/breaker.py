"""The circuit breaker: which markets' last price moved more than their share within their window. Pure.

A market with ``breaker_pct`` > 0 trips when a trade's price lies more than that share above the lowest, or
below the highest, price traded within the ``breaker_window_s`` before it (trade times are the matcher's event
times, so the window follows the sequence, not the clock of whoever settles it). Settlement feeds it every
settled trade in sequence order and puts a tripped market in ``BREAK`` (``__main__.trip``), which only an
operator lifts (``spot admin market resume``). A tripped market's window starts empty again.

Per market, the window keeps two monotonic queues (prices still able to be the window's lowest, and highest),
so a trade costs O(1) amortised whatever the window holds. Known limit: a restarted settlement starts with
empty windows (a move that spans the restart is measured from its first trade after it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction

from shared.domain import Market


class Window:
    """One market's trades within its window: the candidates for its lowest and highest price."""

    __slots__ = ("highs", "lows")

    def __init__(self) -> None:
        self.lows: deque[tuple[int, int]] = deque()  # (ts, price), prices rising from the left
        self.highs: deque[tuple[int, int]] = deque()  # (ts, price), prices falling from the left

    def add(self, ts: int, price: int, window_ms: int) -> tuple[int, int]:
        """Forget trades older than the window before ``ts``; returns (lowest, highest) within it, before this
        trade; then counts this one."""
        since = ts - window_ms
        lows, highs = self.lows, self.highs
        while lows and lows[0][0] < since:
            lows.popleft()
        while highs and highs[0][0] < since:
            highs.popleft()
        seen = (lows[0][1], highs[0][1]) if lows else (price, price)
        while lows and lows[-1][1] >= price:
            lows.pop()
        lows.append((ts, price))
        while highs and highs[-1][1] <= price:
            highs.pop()
        highs.append((ts, price))
        return seen


def moved(price: int, lowest: int, highest: int, share: Decimal) -> bool:
    """Whether ``price`` lies more than ``share`` above ``lowest`` or below ``highest`` (exact)."""
    s = Fraction(share)
    return price > lowest * (1 + s) or price < highest * (1 - s)


class Breaker:
    def __init__(self) -> None:
        self.windows: dict[str, Window] = {}

    def observe(self, market: Market, trades: Iterable[tuple[int, int]]) -> bool:
        """Feed one market's settled trades, (ts ms, price ticks), in sequence order; True when one of them
        trips it (its window is then emptied). A market whose breaker is off, or that does not trade, keeps
        no window."""
        share = market.breaker_pct
        if not share or market.status != "TRADING":
            self.windows.pop(market.symbol, None)
            return False
        window = self.windows.get(market.symbol)
        if window is None:
            window = self.windows[market.symbol] = Window()
        window_ms = market.breaker_window_s * 1000
        for ts, price in trades:
            lowest, highest = window.add(ts, price, window_ms)
            if moved(price, lowest, highest, share):
                del self.windows[market.symbol]
                return True
        return False
