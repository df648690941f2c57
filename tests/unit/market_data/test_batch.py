"""What market-data makes of a batch (``services/market_data/batch.py``), without Redis: the book's own events in.

For any run of orders through the matcher's book, delivered in batches with redeliveries among them, the owners'
reports are exactly the updates ``shared.owner_reports`` gives market-data, each event's once and in order, and
the depth is the book's levels. A record that cannot be written changes nothing and the next one applies.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.market_data.batch import Outputs
from services.market_data.streams import MarketState
from services.matcher.book import Book
from shared import redis as sredis
from shared.binance import execution_report
from shared.domain import OrderType, Side
from shared.messages import MatchedEvent, Trade, TradeExecution
from shared.owner_reports import told_by_market_data
from shared.tracing import NOT_TRACED
from tests.unit.matcher.test_book import MARKET, USERS, Flow

CHANNELS = sredis.Channels("-t")


class Recorder:
    """A pipeline that only keeps what was queued on it."""

    def __init__(self) -> None:
        self.commands: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any) -> None:
        self.commands.append(args)


orders = st.lists(
    st.tuples(
        st.integers(1, USERS), st.sampled_from(list(Side)), st.integers(95, 105), st.integers(1, 5),
        st.sampled_from([OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.MARKET]),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(orders, st.integers(1, 6), st.data())
def test_owners_hear_each_update_market_data_tells_once_in_order_and_the_depth_is_the_books(
    plan: list[tuple[int, Side, int, int, OrderType]], batch_size: int, data: st.DataObject
) -> None:
    book, flow = Book(MARKET), Flow()
    events: list[MatchedEvent] = []
    for user, side, price, qty, otype in plan:
        if otype is OrderType.MARKET:
            order = flow.market(user, side, budget=10**9, qty=qty)
        else:
            order = flow.limit(user, side, price, qty, type=otype)
        event = book.apply(order, 1)
        assert event is not None
        events.append(event)
    state, heard = MarketState(MARKET, CHANNELS), dict[str, list[bytes]]()
    for start in range(0, len(events), batch_size):
        batch = events[start : start + batch_size]
        again = data.draw(st.lists(st.sampled_from(events[: start + 1])), label="redelivered")  # already applied
        out = Outputs(CHANNELS)
        for event in again + batch:
            out.apply(state, event, NOT_TRACED, 0)
        for channel, said in out.users.items():
            heard.setdefault(channel, []).extend(said)
        pipe = Recorder()
        out.queue(pipe)  # type: ignore[arg-type]
        assert len(pipe.commands) == (1 if out.users else 0)  # every owner's reports in one call, no symbol write
    want: dict[str, list[bytes]] = {}
    for e in events:
        for u in e.updates:
            if told_by_market_data(u):
                want.setdefault(CHANNELS.user(u.user_id), []).append(orjson.dumps(execution_report(MARKET, u, e.ts)))
    assert heard == want
    levels = {(o.side, o.price_ticks) for o in book.orders()}
    assert set(state.depth.bids) == {p for s, p in levels if s is Side.BUY}
    assert set(state.depth.asks) == {p for s, p in levels if s is Side.SELL}
    assert state.depth.seq == events[-1].seq


def _trade(trade_id: int, price: int, lots: int = 1) -> Trade:
    return Trade(trade_id, price, lots, 1, 2, 1, 2, True, 0, 0, 60_000 + trade_id)


def test_a_trade_execution_that_cannot_be_written_changes_nothing_and_the_next_applies() -> None:
    state, out = MarketState(MARKET, CHANNELS), Outputs(CHANNELS)
    out.apply(state, TradeExecution(symbol=MARKET.symbol, seq=1, trades=[_trade(1, 100)]), NOT_TRACED, 61_000)
    _, w = out.writes[MARKET.symbol]
    mark, candles = w.mark(), state.candles.state()
    broken = TradeExecution(symbol=MARKET.symbol, seq=2, trades=[_trade(2, 101), _trade(2**70, 102)])  # past JSON
    with pytest.raises(TypeError):
        out.apply(state, broken, NOT_TRACED, 61_000)
    assert (w.mark(), state.candles.state(), state.trade_seq) == (mark, candles, 1)
    assert state.last_trade is not None and state.last_trade.price == 100
    out.apply(state, TradeExecution(symbol=MARKET.symbol, seq=3, trades=[_trade(3, 103)]), NOT_TRACED, 61_000)
    assert state.trade_seq == 3 and state.last_trade is not None and state.last_trade.price == 103
    out.apply(state, TradeExecution(symbol=MARKET.symbol, seq=3, trades=[_trade(3, 103)]), NOT_TRACED, 61_000)
    assert w.mark() > mark and state.trade_seq == 3  # the redelivery wrote nothing more


def test_an_event_whose_report_cannot_be_shown_leaves_the_depth_as_it_was() -> None:
    book, flow = Book(MARKET), Flow()
    event = book.apply(flow.limit(1, Side.BUY, 100, 2, type=OrderType.LIMIT_MAKER), 1)  # its NEW is market-data's
    assert event is not None
    bad = MatchedEvent(event.symbol, event.seq, 2**70, event.request_id, event.updates, [], event.deltas)
    state, out = MarketState(MARKET, CHANNELS), Outputs(CHANNELS)
    with pytest.raises(TypeError):
        out.apply(state, bad, NOT_TRACED, 0)  # its event time is past 64 bits: no JSON takes it
    assert (state.depth.bids, state.depth.seq, out.users) == ({}, 0, {})
    out.apply(state, event, NOT_TRACED, 0)
    assert state.depth.bids == {100: 2} and list(out.users) == [CHANNELS.user(1)]
