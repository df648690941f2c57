"""The timed pushes of market-data: depth, top of the book, live candles and tickers, on Binance's clocks.

Every ``DEPTH_INTERVAL_MS`` each symbol whose depth moved pushes one gap-free diff (``@depth@100ms``) with the
top of the book (``@depth5/10/20@100ms``), and each whose trades moved its candles pushes them; every
``SLOW_DEPTH_INTERVAL_MS`` the diffs since are folded into one (``@depth``) with the top of the book
(``@depth<levels>``; its ``@100ms`` too where the depth did not move, so a new subscriber hears within a
second); every ``KLINE_REFRESH_MS`` every kline stream's candle, traded or not; every ``TICKER_INTERVAL_MS``
the ticker windows, and the ``!ticker@arr``/``!miniTicker@arr`` arrays of the day tickers that changed.

``Schedule`` says which of them are due (the slower ones are looked at only when the depth is), and
``queue_pushes`` adds them to one pipeline, each symbol's as one atomic write. No I/O: the caller executes the
pipeline, then commits the input offsets the pushed state came from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shared import redis as sredis

from .streams import (
    ALL_MINI_TICKERS,
    ALL_TICKERS,
    FAST,
    PUSHED,
    SLOW,
    MarketState,
    publish_candles,
    publish_depth,
    publish_partial,
    publish_slow_depth,
    publish_tickers,
    refresh_candles,
)

DEPTH_INTERVAL_MS = 100
SLOW_DEPTH_INTERVAL_MS = 1000  # Binance's ``@depth`` and ``@depth<levels>`` without ``@100ms``
TICKER_INTERVAL_MS = 1000  # Binance's update speed of the ticker streams
KLINE_REFRESH_MS = 2000  # Binance's update speed of the kline streams (but 1s's), traded or not


@dataclass(frozen=True, slots=True)
class Due:
    """The pushes due besides the 100 ms depth (which is, whenever a ``Due`` is given)."""

    slow: bool
    klines: bool
    tickers: bool


class Schedule:
    """When each timed push is next due, by a monotonic clock in seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last_flush = self.last_slow = self.last_klines = self.last_tickers = clock()

    def due(self) -> Due | None:
        """The pushes due now, or None before the next depth push (the others wait for it)."""
        if (self.clock() - self.last_flush) * 1000 < DEPTH_INTERVAL_MS:
            return None
        self.last_flush = self.clock()
        slow = (self.clock() - self.last_slow) * 1000 >= SLOW_DEPTH_INTERVAL_MS
        if slow:
            self.last_slow = self.clock()
        klines = (self.clock() - self.last_klines) * 1000 >= KLINE_REFRESH_MS
        if klines:
            self.last_klines = self.clock()
        tickers = (self.clock() - self.last_tickers) * 1000 >= TICKER_INTERVAL_MS
        if tickers:
            self.last_tickers = self.clock()
        return Due(slow, klines, tickers)


def queue_pushes(
    pipe: sredis.Pipeline, states: Iterable[MarketState], channels: sredis.Channels, due: Due, now: int
) -> None:
    """Add the ``due`` pushes of every symbol to ``pipe``, stamped ``now`` (ms)."""
    states = list(states)
    moved = set()
    for state in states:
        diff = state.depth.take_diff()
        if diff is not None or state.candles_moved:
            w = state.atomic()
            if diff is not None:
                publish_depth(w, state, diff, now)
                publish_partial(w, state, FAST)
                moved.add(state.market.symbol)
                PUSHED.labels("depth").inc()
            publish_candles(w, state, now)
            w.queue(pipe)
    if due.slow:
        for state in states:
            w = state.atomic()
            slow = state.depth.take_slow_diff()
            if slow is not None:
                publish_slow_depth(w, state, slow, now)
            publish_partial(w, state, SLOW)
            if state.market.symbol not in moved:  # a new subscriber hears within a second
                publish_partial(w, state, FAST)
            w.queue(pipe)
    if due.klines:
        for state in states:
            w = state.atomic()
            refresh_candles(w, state, now)
            w.queue(pipe)
    if due.tickers:
        everyone: dict[str, list[bytes]] = {ALL_TICKERS: [], ALL_MINI_TICKERS: []}
        for state in states:
            w = state.atomic()
            publish_tickers(w, state, now, everyone)
            w.queue(pipe)
        arrays = sredis.Publications()
        for kind, events in everyone.items():
            if events:
                arrays.add(channels.stream(kind), b"[" + b",".join(events) + b"]")
        arrays.queue(pipe)
