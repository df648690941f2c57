"""Who tells the owner what (``shared.owner_reports``), pinned to the matcher's own output.

The order processor sends an accepted order's NEW when its hold commits, and market-data sends every other
update of the matcher's events. For any book and any incoming order, the two together must be exactly the
matcher's updates, in its order: the processor's NEW is the matcher's first update field for field, and
market-data leaves out that one and nothing else.
"""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.matcher.book import Book
from shared.domain import ExecType, OrderType, Side, StpMode, TimeInForce
from shared.messages import OrderListCommand
from shared.owner_reports import acceptance_update, confirmed_on_acceptance, market_data_reports, told_by_market_data
from tests.unit.matcher.test_book import MARKET, USERS, Flow

resting_orders = st.lists(
    st.tuples(st.integers(1, USERS), st.sampled_from(list(Side)), st.integers(95, 105), st.integers(1, 5)), max_size=8
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    resting_orders,
    st.sampled_from([OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.MARKET]),
    st.sampled_from(list(TimeInForce)),
    st.sampled_from(list(StpMode)),
    st.sampled_from(list(Side)),
    st.integers(95, 105),
    st.integers(1, 8),
)
def test_the_processors_new_and_market_datas_reports_are_the_matchers_updates_once_each(
    resting, otype, tif, stp, side, price, qty
) -> None:
    book, flow = Book(MARKET), Flow()
    for user, s, p, q in resting:  # a book the order may cross, some of it the same owner's (self-trade)
        book.apply(flow.limit(user, s, p, q, stp=StpMode.NONE), 1)
    if otype is OrderType.MARKET:
        order = flow.market(USERS, side, budget=10**9, qty=qty, stp=stp)
    else:
        order = flow.limit(
            USERS, side, price, qty, tif=tif if otype is OrderType.LIMIT else TimeInForce.GTC, stp=stp, type=otype
        )
    event = book.apply(order, 1)
    assert event is not None
    by_processor = [acceptance_update(order)] if confirmed_on_acceptance(order.type) else []
    by_market_data = [u for u in event.updates if told_by_market_data(u)]
    assert by_processor + by_market_data == event.updates
    if not by_processor:  # a LIMIT_MAKER: refused whole by the matcher, or its NEW comes from the matcher
        first = event.updates[0]
        refused = first.exec_type is ExecType.REJECTED
        assert (refused and len(event.updates) == 1 and not event.trades) or first == acceptance_update(order)


@given(resting_orders, st.data())
def test_market_data_tells_every_update_of_a_cancel(resting, data) -> None:
    """A cancel's CANCELED (or its refusal) is the matcher's alone to report."""
    book, flow = Book(MARKET), Flow()
    for user, s, p, q in resting:
        book.apply(flow.limit(user, s, p, q, stp=StpMode.NONE), 1)
    ids = [o.order_id for o in book.orders()] or [10**9]
    order_id = data.draw(st.sampled_from(ids))
    event = book.apply(flow.cancel(flow.owner.get(order_id, 1), order_id), 2)
    assert event is not None
    assert all(told_by_market_data(u) for u in event.updates)


def test_an_order_lists_legs_are_all_told_by_market_data_with_g_and_its_list_status() -> None:
    """An OTO's working LIMIT (a type the processor confirms alone) is told by market-data, as every leg is, each
    report with the list's id in ``g``; the list's ``listStatus`` follows its legs' reports; other orders keep -1."""
    book, flow = Book(MARKET), Flow()
    book.apply(flow.limit(2, Side.SELL, 100, 1), 1)
    legs = [flow.limit(1, Side.BUY, 99, 1), flow.limit(1, Side.SELL, 110, 1, type=OrderType.LIMIT_MAKER)]
    src = flow._next()
    placed = book.apply(
        OrderListCommand(**src, list_id=77, user_id=1, contingency="OTO", list_client_id="L", working=1, orders=legs),
        2,
    )
    assert placed is not None
    told = [orjson.loads(raw) for _, raw in market_data_reports(MARKET, placed)]
    assert [(e["e"], e.get("i"), e["g"]) for e in told] == [
        ("executionReport", legs[0].order_id, 77),
        ("executionReport", legs[1].order_id, 77),
        ("listStatus", None, 77),
    ]
    assert told[-1]["O"] == [{"s": "BTCUSDT", "i": leg.order_id, "c": leg.client_order_id} for leg in legs]
    plain = book.apply(flow.limit(3, Side.BUY, 100, 1), 3)
    assert plain is not None and {orjson.loads(raw)["g"] for _, raw in market_data_reports(MARKET, plain)} == {-1}
