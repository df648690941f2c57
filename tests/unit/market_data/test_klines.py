"""One-minute candles against a simple model: group a symbol's trades by minute and read off each group.

``fold`` sees the trades one by one, in the order the matcher made them (ids and times never go back); the
candles it closes and the one it holds at the end must be the model's, and a candle's REST row and stream
event must say the same numbers.
"""

from __future__ import annotations

from dataclasses import astuple
from decimal import Decimal
from itertools import groupby

from hypothesis import given
from hypothesis import strategies as st

from services.market_data.klines import MINUTE_MS, Kline, fold
from shared.messages import Trade
from shared.postgres import DEFAULT_MARKETS

MARKET = DEFAULT_MARKETS[0]
START = 1_700_000_000_000  # a minute boundary: 28,333,333 minutes since the epoch, plus 20 seconds
steps = st.lists(
    st.tuples(
        st.sampled_from([0, 1, 999, 20_000, 59_999, 60_000, 61_000, 3 * MINUTE_MS]),  # ms after the previous trade
        st.integers(1, 10**8),  # price ticks
        st.integers(1, 10**6),  # lots
        st.booleans(),  # buyer is maker
    ),
    min_size=1,
    max_size=80,
)


def trades_of(plan: list[tuple[int, int, int, bool]]) -> list[Trade]:
    out, ts = [], START
    for trade_id, (gap, price, lots, buyer_is_maker) in enumerate(plan, start=1):
        ts += gap
        out.append(Trade(trade_id, price, lots, 1, 2, 3, 4, buyer_is_maker, 0, 0, ts))
    return out


def model(trades: list[Trade]) -> list[tuple[int, ...]]:
    """Each minute's candle as ``Kline``'s fields, from the minute's trades alone."""
    rows = []
    for open_time, group in groupby(trades, key=lambda t: t.ts - t.ts % MINUTE_MS):
        ts = list(group)
        taker_buys = [t for t in ts if not t.buyer_is_maker]
        rows.append(
            (
                open_time,
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


def folded(trades: list[Trade]) -> list[Kline]:
    current: Kline | None = None
    closed: list[Kline] = []
    for t in trades:
        current, done = fold(current, t)
        if done is not None:
            closed.append(done)
    assert current is not None
    return [*closed, current]


@given(steps)
def test_fold_gives_the_models_candles(plan: list[tuple[int, int, int, bool]]) -> None:
    trades = trades_of(plan)
    assert [astuple(k) for k in folded(trades)] == model(trades)


@given(steps)
def test_a_closed_candle_does_not_change_afterwards(plan: list[tuple[int, int, int, bool]]) -> None:
    """``fold`` hands back the candle it closed; the trades after it go to a new one."""
    trades = trades_of(plan)
    current: Kline | None = None
    closed: list[tuple[Kline, tuple[int, ...]]] = []
    for t in trades:
        current, done = fold(current, t)
        if done is not None:
            closed.append((done, astuple(done)))
            assert done.last_trade < t.trade_id and done.open_time < current.open_time
    assert all(astuple(k) == at_close for k, at_close in closed)


@given(steps)
def test_row_and_event_say_the_same_numbers_in_decimals(plan: list[tuple[int, int, int, bool]]) -> None:
    m = MARKET
    for k in folded(trades_of(plan)):
        row, event = k.row(m), k.event(m, 42, closed=True)
        body = event["k"]
        assert isinstance(body, dict)
        assert row[0] == body["t"] == k.open_time and row[6] == body["T"] == k.open_time + MINUTE_MS - 1
        assert [Decimal(str(row[i])) for i in (1, 2, 3, 4)] == [p * m.tick_size for p in astuple(k)[1:5]]
        assert (row[1], row[2], row[3], row[4]) == (body["o"], body["h"], body["l"], body["c"])
        assert Decimal(str(row[5])) == k.volume * m.step_size and row[5] == body["v"]
        assert Decimal(str(row[7])) == k.quote_volume * m.tick_size * m.step_size and row[7] == body["q"]
        assert row[8] == body["n"] == k.trades and (row[9], row[10]) == (body["V"], body["Q"])
        assert (body["f"], body["L"], body["x"], body["i"]) == (k.first_trade, k.last_trade, True, "1m")
