"""The ticker streams' minutes (``services/market_data/tickers.py``) against a model that keeps every minute.

``Minutes`` lets go of the closed minutes older than ``KEPT_MS`` and remembers only the close of the newest it let
go. For any run of closed minutes (redelivered closes among them) and any moment after them, every streamed window
(``WINDOWS``: 1h, 4h, 1d and avgPrice's 5 minutes) must say what a model that never lets go says: the retention
loses nothing a window needs, not even the close before the window opened.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from services.market_data.tickers import KEPT_MS, WINDOWS, Minutes
from shared.candles import DAY_MS, MINUTE_MS, Candle
from shared.tickers import Stats, stats, window_open

START = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE_MS  # a minute's open


class AllMinutes:
    """Every closed minute ever added, once: slow and obviously right."""

    def __init__(self) -> None:
        self.closed: list[Candle] = []

    def add(self, c: Candle) -> None:
        if not self.closed or c.open_time > self.closed[-1].open_time:
            self.closed.append(c)

    def windows(self, live: Candle | None, now: int, sizes: dict[str, int]) -> dict[str, Stats]:
        candles = [c for c in self.closed if c.trades]
        if live is not None and live.trades and (not candles or live.open_time > candles[-1].open_time):
            candles.append(live)
        out = {}
        for name, size_ms in sizes.items():
            start = window_open(now, size_ms)
            before = [c for c in candles if c.open_time < start]
            out[name] = stats(
                [c for c in candles if c.open_time >= start], start, now, before[-1].close if before else 0
            )
        return out


def minute(open_time: int, price: int, lots: int) -> Candle:
    c = Candle.empty(open_time, open_time + MINUTE_MS - 1, price)
    c.add(open_time // MINUTE_MS, price, lots, taker_buys=lots % 2 == 0)
    return c


# each step: minutes since the last close (0: the same minute's close again, a redelivery), its price and lots,
# how late after its close it arrives, and whether the windows are read after it
steps = st.lists(
    st.tuples(
        st.sampled_from([0, 1, 1, 2, 5, 59, 60, 61, 240, 1439, 1440, 1441, 1560, 3000]),
        st.integers(1, 1000),
        st.integers(1, 50),
        st.integers(0, 2 * MINUTE_MS),
        st.booleans(),
    ),
    min_size=1,
    max_size=40,
)


@given(steps, st.integers(0, 2 * DAY_MS), st.booleans())
@example([(0, 100, 1, 0, True), (1441, 200, 1, 0, True)], DAY_MS, False)  # the only minute before the day let go
@example([(1, 100, 1, 0, False), (1560, 200, 1, 0, False), (1, 300, 1, 0, True)], 0, True)
def test_every_window_is_what_a_model_keeping_every_minute_says(
    plan: list[tuple[int, int, int, int, bool]], quiet_ms: int, with_live: bool
) -> None:
    kept, model = Minutes(), AllMinutes()
    open_time, now = START, START
    live = None
    for gap, price, lots, late_ms, read in plan:
        open_time += gap * MINUTE_MS
        c = minute(open_time, price, lots)
        now = max(now, c.close_time + 1 + late_ms)  # a minute closes once its time ran out; the clock never goes back
        kept.add(c, now)
        model.add(c)
        live = minute(now - now % MINUTE_MS, price + 1, lots) if with_live else None
        if read:
            assert kept.windows(live, now, WINDOWS) == model.windows(live, now, WINDOWS)
    later = now + quiet_ms  # a quiet market: no close comes, the windows still roll
    assert kept.windows(live, later, WINDOWS) == model.windows(live, later, WINDOWS)
    assert all(c.open_time >= now - KEPT_MS for c in kept.closed)  # and it is bounded


def test_a_redelivered_close_is_taken_once() -> None:
    kept = Minutes()
    first = minute(START, 100, 1)
    kept.add(first, first.close_time + 1)
    kept.add(minute(START, 999, 7), first.close_time + 2)  # the same minute again, as a redelivery brings it
    kept.add(minute(START - MINUTE_MS, 5, 1), first.close_time + 3)  # an older one
    assert list(kept.closed) == [first]


def test_minutes_restored_in_any_order_are_kept_oldest_first() -> None:
    candles = [minute(START + i * MINUTE_MS, 100 + i, 1) for i in range(5)]
    assert list(Minutes(reversed(candles)).closed) == candles


def test_no_trade_yet_makes_every_window_empty_at_the_last_close() -> None:
    windows = Minutes().windows(None, START, WINDOWS)
    assert {s.trades for s in windows.values()} == {0}
    assert {s.last for s in windows.values()} == {0}
