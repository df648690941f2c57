"""Live candles of every kline stream against a simple model: group a symbol's trades by candle and read off
each group.

``LiveCandles.fold`` sees the trades one by one, in the order the matcher made them (ids and times never go
back); for every series (interval and zone), the candles it closes and the one it holds at the end must be the
model's, a closed candle never changes afterwards, the state Redis keeps restores the same candles, and a
candle's REST row and stream event say the same numbers.
"""

from __future__ import annotations

from dataclasses import astuple
from decimal import Decimal
from itertools import groupby

from hypothesis import given
from hypothesis import strategies as st

from services.market_data.klines import ONE_MINUTE, SERIES, LiveCandles, Series
from shared.binance import kline_event, kline_row
from shared.candles import HOUR_MS, MINUTE_MS, Candle, bucket_open, next_open
from shared.messages import Trade
from shared.postgres import DEFAULT_MARKETS

MARKET = DEFAULT_MARKETS[0]
START = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC: near a day's end at +08:00
GAPS = [0, 1, 999, 20_000, 59_999, 60_000, 61_000, 3 * MINUTE_MS, HOUR_MS, 9 * HOUR_MS, 26 * HOUR_MS, 40 * 24 * HOUR_MS]
steps = st.lists(
    st.tuples(
        st.sampled_from(GAPS),  # ms after the previous trade
        st.integers(1, 10**8),  # price ticks
        st.integers(1, 10**6),  # lots
        st.booleans(),  # buyer is maker
    ),
    min_size=1,
    max_size=60,
)


def trades_of(plan: list[tuple[int, int, int, bool]]) -> list[Trade]:
    out, ts = [], START
    for trade_id, (gap, price, lots, buyer_is_maker) in enumerate(plan, start=1):
        ts += gap
        out.append(Trade(trade_id, price, lots, 1, 2, 3, 4, buyer_is_maker, 0, 0, ts))
    return out


def model(trades: list[Trade], s: Series) -> list[tuple[int, ...]]:
    """Each candle of the series as ``Candle``'s fields, from its trades alone."""
    rows = []
    for open_time, group in groupby(trades, key=lambda t: bucket_open(t.ts, s.interval, s.offset_ms)):
        ts = list(group)
        taker_buys = [t for t in ts if not t.buyer_is_maker]
        rows.append(
            (
                open_time,
                next_open(open_time, s.interval, s.offset_ms) - 1,
                ts[0].price_ticks,
                max(t.price_ticks for t in ts),
                min(t.price_ticks for t in ts),
                ts[-1].price_ticks,
                sum(t.qty_lots for t in ts),
                sum(t.price_ticks * t.qty_lots for t in ts),
                len(ts),
                sum(t.qty_lots for t in taker_buys),
                sum(t.price_ticks * t.qty_lots for t in taker_buys),
                ts[0].trade_id,
                ts[-1].trade_id,
            )
        )
    return rows


def folded(trades: list[Trade]) -> tuple[dict[str, list[Candle]], LiveCandles]:
    live = LiveCandles()
    closed: dict[str, list[Candle]] = {s.kind: [] for s in SERIES}
    for t in trades:
        for s, done in live.fold(t):
            closed[s.kind].append(done)
    return closed, live


def test_every_interval_in_utc_and_the_zoned_ones_that_differ() -> None:
    kinds = [s.kind for s in SERIES]
    assert len(kinds) == len(set(kinds)) == 22
    assert "kline_1M@+08:00" in kinds and "kline_1h@+08:00" not in kinds and ONE_MINUTE.kind == "kline_1m"


@given(steps)
def test_fold_gives_the_models_candles_for_every_series(plan: list[tuple[int, int, int, bool]]) -> None:
    trades = trades_of(plan)
    closed, live = folded(trades)
    for s in SERIES:
        got = [astuple(c) for c in [*closed[s.kind], live.current[s.kind]]]
        assert got == model(trades, s), s.kind


@given(steps)
def test_a_closed_candle_does_not_change_afterwards(plan: list[tuple[int, int, int, bool]]) -> None:
    live = LiveCandles()
    closed: list[tuple[Candle, tuple[int, ...]]] = []
    for t in trades_of(plan):
        for s, done in live.fold(t):
            closed.append((done, astuple(done)))
            assert done.last_trade < t.trade_id and done.close_time < t.ts
            assert live.current[s.kind].open_time > done.open_time
    assert all(astuple(k) == at_close for k, at_close in closed)


@given(steps, st.integers(0, 59))
def test_the_kept_state_restores_the_same_candles(plan: list[tuple[int, int, int, bool]], cut: int) -> None:
    """A restart (state from Redis) folds the rest of the trades to the same candles as no restart."""
    trades = trades_of(plan)
    cut = min(cut, len(trades))
    live = LiveCandles()
    for t in trades[:cut]:
        live.fold(t)
    again = LiveCandles.restore(live.state())
    for t in trades[cut:]:
        live.fold(t)
        again.fold(t)
    assert again.state() == live.state()


def test_the_single_minute_candle_of_earlier_versions_is_restored() -> None:
    old = [1_700_000_040_000, 5, 7, 4, 6, 10, 60, 2, 3, 18, 11, 12]
    restored = LiveCandles.restore(old)
    assert astuple(restored.current["kline_1m"]) == (old[0], old[0] + MINUTE_MS - 1, *old[1:])


@given(steps)
def test_row_and_event_say_the_same_numbers_in_decimals(plan: list[tuple[int, int, int, bool]]) -> None:
    m = MARKET
    closed, live = folded(trades_of(plan))
    for s in SERIES:
        for k in [*closed[s.kind], live.current[s.kind]]:
            row, event = kline_row(m, k), kline_event(m, k, s.interval.name, 42, closed=True)
            body = event["k"]
            assert isinstance(body, dict)
            assert row[0] == body["t"] == k.open_time and row[6] == body["T"] == k.close_time
            assert [Decimal(str(row[i])) for i in (1, 2, 3, 4)] == [p * m.tick_size for p in astuple(k)[2:6]]
            assert (row[1], row[2], row[3], row[4]) == (body["o"], body["h"], body["l"], body["c"])
            assert Decimal(str(row[5])) == k.volume * m.step_size and row[5] == body["v"]
            assert Decimal(str(row[7])) == k.quote_volume * m.tick_size * m.step_size and row[7] == body["q"]
            assert row[8] == body["n"] == k.trades and (row[9], row[10]) == (body["V"], body["Q"])
            assert (body["f"], body["L"], body["x"], body["i"]) == (k.first_trade, k.last_trade, True, s.interval.name)
