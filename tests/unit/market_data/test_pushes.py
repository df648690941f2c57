"""When market-data pushes (``services/market_data/pushes.py``'s ``Schedule``), against Binance's clocks, and
what ``queue_pushes`` sends when they are due.

The depth goes out at most every ``DEPTH_INTERVAL_MS`` and as soon as it is due; the slower pushes (the 1,000 ms
depth, the kline refresh, the tickers) go out with a depth push, each at most once per its interval and at the
first depth push once its interval has passed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgspec
from hypothesis import example, given
from hypothesis import strategies as st

from services.market_data.pushes import (
    DEPTH_INTERVAL_MS,
    KLINE_REFRESH_MS,
    SLOW_DEPTH_INTERVAL_MS,
    TICKER_INTERVAL_MS,
    Due,
    Schedule,
    queue_pushes,
)
from services.market_data.streams import MarketState, stream_name
from shared import redis as sredis
from shared.domain import Side
from shared.messages import LevelDelta
from tests.unit.matcher.test_book import MARKET as BTC

ETH = replace(BTC, symbol="ETHUSDT", base="ETH")
CHANNELS = sredis.Channels("-t")

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


class Recorder:
    """A pipeline that keeps what was queued on it: each ``PUBLISH`` of an atomic write or a publication call."""

    def __init__(self) -> None:
        self.published: list[str] = []  # channels, in order

    def execute_command(self, *args: Any) -> None:
        assert args[0] == "EVAL"
        if args[1] == sredis.ATOMIC:
            self.published += [c[1] for c in msgspec.msgpack.decode(args[4]) if c[0] == "PUBLISH"]
        else:
            self.published += [channel for channel, _ in msgspec.msgpack.decode(args[3])]


def _stream(symbol: str, kind: str) -> str:
    return CHANNELS.stream(stream_name(symbol, kind))


def test_queue_pushes_sends_what_is_due_and_only_where_something_moved() -> None:
    moved, quiet = MarketState(BTC, CHANNELS), MarketState(ETH, CHANNELS)
    moved.depth.apply(1, [LevelDelta(Side.BUY, 100, 3)])
    pipe = Recorder()
    queue_pushes(pipe, [moved, quiet], CHANNELS, Due(slow=False, klines=False, tickers=False), 1000)  # type: ignore[arg-type]
    assert _stream("BTCUSDT", "depth@100ms") in pipe.published
    assert not any("ethusdt" in c for c in pipe.published)  # nothing moved there: nothing said
    pipe = Recorder()
    queue_pushes(pipe, [moved, quiet], CHANNELS, Due(slow=True, klines=True, tickers=True), 2000)  # type: ignore[arg-type]
    assert _stream("BTCUSDT", "depth@100ms") not in pipe.published  # its diff went out already
    assert _stream("BTCUSDT", "depth") in pipe.published  # the second's diffs, folded
    for symbol in ("BTCUSDT", "ETHUSDT"):  # every second the top of the book, at both speeds where quiet
        assert _stream(symbol, "depth5") in pipe.published
    assert _stream("ETHUSDT", "depth5@100ms") in pipe.published
    assert not any("ticker" in c or "kline" in c for c in pipe.published)  # neither traded yet
