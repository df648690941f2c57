"""When market-data pushes (``services/market_data/pushes.py``'s ``Schedule``), against Binance's clocks.

The depth goes out at most every ``DEPTH_INTERVAL_MS`` and as soon as it is due; the slower pushes (the 1,000 ms
depth, the kline refresh, the tickers) go out with a depth push, each at most once per its interval and at the
first depth push once its interval has passed.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from services.market_data.pushes import (
    DEPTH_INTERVAL_MS,
    KLINE_REFRESH_MS,
    SLOW_DEPTH_INTERVAL_MS,
    TICKER_INTERVAL_MS,
    Schedule,
)

INTERVALS = {"slow": SLOW_DEPTH_INTERVAL_MS, "klines": KLINE_REFRESH_MS, "tickers": TICKER_INTERVAL_MS}


class Clock:
    """A monotonic clock in seconds that moves only when told."""

    def __init__(self) -> None:
        self.ms = 5_000_000

    def __call__(self) -> float:
        return self.ms / 1000


@given(st.lists(st.integers(0, 2500), max_size=200))
@example([DEPTH_INTERVAL_MS - 1, 1, SLOW_DEPTH_INTERVAL_MS - DEPTH_INTERVAL_MS, KLINE_REFRESH_MS])
def test_each_push_goes_out_once_its_interval_has_passed_and_never_sooner(gaps: list[int]) -> None:
    clock = Clock()
    schedule = Schedule(clock)
    last = {"depth": clock(), **dict.fromkeys(INTERVALS, clock())}  # the model: when each went out last

    def passed(name: str, interval_ms: int) -> bool:  # in the clock's own seconds, as a float says it
        return (clock() - last[name]) * 1000 >= interval_ms

    for gap in gaps:
        clock.ms += gap
        due = schedule.due()
        if not passed("depth", DEPTH_INTERVAL_MS):
            assert due is None
            continue
        assert due is not None
        last["depth"] = clock()
        for name, interval in INTERVALS.items():
            want = passed(name, interval)
            assert getattr(due, name) is want, name
            if want:
                last[name] = clock()


def test_nothing_is_due_before_the_first_depth_interval() -> None:
    clock = Clock()
    schedule = Schedule(clock)
    clock.ms += DEPTH_INTERVAL_MS - 1
    assert schedule.due() is None
    clock.ms += 1
    due = schedule.due()
    assert due is not None and not (due.slow or due.klines or due.tickers)
